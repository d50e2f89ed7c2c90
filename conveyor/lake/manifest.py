"""Extract manifests: the only thing a lake reader trusts.

An extract folder holds Parquet parts and, once every part is durable, ``manifest.json``.
The manifest is written to a temporary name, fsynced and renamed into place, so it either
exists completely or not at all. A folder without a manifest is invisible to readers:
it is an extract in progress or the leftover of a crash, and retention removes it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.faults import crash_point

if TYPE_CHECKING:
    import pyarrow as pa


MANIFEST = "manifest.json"
FORMAT = "conveyor.manifest/1"


@dataclass(frozen=True)
class PartFile:
    """One Parquet part of an extract."""

    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """What an extract contains, how it was read, and where its watermark stands."""

    extract_id: str
    source: str
    upstream_table: str
    relation: str
    files: list[PartFile]
    arrow_schema: pa.Schema
    query: str
    started_at: str
    finished_at: str
    job_type: str = "arrow"
    incremental: bool = False
    watermark: dict[str, Any] | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    folder: Path | None = None
    warnings: list[str] = field(default_factory=list)
    """What the extract noticed, e.g. MySQL zero dates it read as NULL."""

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def checksum(self) -> str:
        """A content checksum over every part, in order."""
        import hashlib

        digest = hashlib.sha256()
        for part in self.files:
            digest.update(part.sha256.encode())
        return digest.hexdigest()

    def paths(self) -> list[Path]:
        """Absolute paths of the parts (the manifest must have been read from disk)."""
        assert self.folder is not None
        return [self.folder / f.path for f in self.files]

    def to_json(self) -> dict[str, Any]:
        schema_ipc = base64.b64encode(self.arrow_schema.serialize().to_pybytes()).decode()
        return {
            "format": FORMAT,
            "extract_id": self.extract_id,
            "source": self.source,
            "upstream_table": self.upstream_table,
            "relation": self.relation,
            "job_type": self.job_type,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "rows": self.rows,
            "bytes": self.bytes,
            "checksum": self.checksum,
            "query": self.query,
            "incremental": self.incremental,
            "watermark": self.watermark,
            "columns": self.columns,
            "warnings": self.warnings,
            "schema": [{"name": f.name, "arrow": str(f.type), "nullable": f.nullable} for f in self.arrow_schema],
            "arrow_schema_ipc": schema_ipc,
            "files": [asdict(f) for f in self.files],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> Manifest:
        import pyarrow as pa

        if data.get("format") != FORMAT:
            raise ValueError(f"unknown manifest format {data.get('format')!r}")
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["arrow_schema_ipc"])))
        return cls(
            extract_id=data["extract_id"],
            source=data["source"],
            upstream_table=data["upstream_table"],
            relation=data["relation"],
            files=[PartFile(**f) for f in data["files"]],
            arrow_schema=schema,
            query=data["query"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            job_type=data.get("job_type", "arrow"),
            incremental=data.get("incremental", False),
            watermark=data.get("watermark"),
            columns=data.get("columns", []),
            folder=folder,
            warnings=data.get("warnings", []),
        )


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Commit an extract: write its manifest atomically (temp file, fsync, rename, fsync dir)."""
    target = folder / MANIFEST
    temp = folder / f".{MANIFEST}.tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(manifest.to_json(), handle, indent=2, sort_keys=False)
        handle.flush()
        os.fsync(handle.fileno())
    crash_point("lake.manifest.before_rename")
    os.replace(temp, target)
    fsync_dir(folder)
    crash_point("lake.manifest.after_rename")
    return target


def read_manifest(folder: Path) -> Manifest:
    with open(folder / MANIFEST, encoding="utf-8") as handle:
        return Manifest.from_json(json.load(handle), folder)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
