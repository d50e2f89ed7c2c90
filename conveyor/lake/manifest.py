"""Extract manifests: the only thing a lake reader trusts.

An extract folder (a key prefix, on an object store) holds Parquet parts and, once every
part is durable, ``manifest.json``. The manifest is created in one atomic step that refuses
an existing one (:meth:`~conveyor.lake.store.Store.put_new`: a hard link locally, a
conditional PUT on S3), so it exists completely or not at all, and two writers can never
both commit one extract id. A folder without a manifest is invisible to readers: it is an
extract in progress or the leftover of a crash, and the next writer of the relation
removes it.
"""

from __future__ import annotations

import base64
import builtins
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import LakeError
from conveyor.faults import crash_point
from conveyor.lake.store import LocalStore, Store, fsync_dir

__all__ = ["MANIFEST", "Manifest", "PartFile", "commit_manifest", "fsync_dir", "load_manifest", "read_manifest"]

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs


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
    store: Store | None = None
    """Where the extract lives (set once it was read from a lake or committed to one)."""
    key: str = ""
    """The extract's folder in ``store``: ``data/<source>/<relation>/<extract-id>``."""
    warnings: list[str] = field(default_factory=list)
    """What the extract noticed, e.g. MySQL zero dates it read as NULL."""

    @property
    def folder(self) -> Path | None:
        """The extract's local folder, when its lake is a local folder (None on an object store)."""
        return self.store.path(self.key) if isinstance(self.store, LocalStore) else None

    @property
    def local(self) -> bool:
        """Whether the parts are local files (:meth:`paths`) rather than objects in a bucket."""
        return self.folder is not None

    @property
    def location(self) -> str:
        """Where the extract is, for messages: a folder or ``s3://bucket/.../<extract-id>``."""
        assert self.store is not None
        return f"{self.store.location}/{self.key}"

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
        """Absolute paths of the parts of an extract in a local lake."""
        folder = self.folder
        if folder is None:
            raise LakeError(f"the extract {self.extract_id} is not in a local lake (it is at {self.location}).")
        return [folder / f.path for f in self.files]

    def part_keys(self) -> list[str]:
        """The store keys of the parts, in order."""
        return [f"{self.key}/{f.path}" for f in self.files]

    def arrow_files(self) -> tuple[pafs.FileSystem, list[str]]:
        """The Arrow filesystem of the extract's lake and the paths of its parts in it."""
        assert self.store is not None
        filesystem, _base = self.store.arrow()
        return filesystem, [self.store.arrow_path(key) for key in self.part_keys()]

    def dataset(self) -> ds.Dataset:
        """The parts as one ``pyarrow.dataset``, wherever they are (a folder or a bucket)."""
        import pyarrow.dataset as ds

        filesystem, paths = self.arrow_files()
        return ds.dataset(paths, format="parquet", filesystem=filesystem)

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

    def encoded(self) -> builtins.bytes:  # `bytes` here is the property above
        """The manifest's JSON document, as committed."""
        return json.dumps(self.to_json(), indent=2, sort_keys=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: dict[str, Any], store: Store | None = None, key: str = "") -> Manifest:
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
            store=store,
            key=key,
            warnings=data.get("warnings", []),
        )


def commit_manifest(store: Store, key: str, manifest: Manifest) -> str:
    """Commit an extract: create ``<key>/manifest.json`` in one atomic step, after every part.

    The store refuses to replace an existing manifest (:meth:`~conveyor.lake.store.Store.put_new`),
    so an extract id is committed at most once; a refusal is an error, never an overwrite.
    Returns the manifest's location.
    """
    crash_point("lake.manifest.before_rename")
    if not store.put_new(f"{key}/{MANIFEST}", manifest.encoded()):
        raise LakeError(
            f'the extract {manifest.extract_id} of "{manifest.relation}" was already committed by another writer '
            f"({store.location}/{key}); nothing was overwritten.",
            hint="Extract again: the new extract gets a new id.",
        )
    crash_point("lake.manifest.after_rename")
    manifest.store, manifest.key = store, key
    return f"{store.location}/{key}/{MANIFEST}"


def load_manifest(store: Store, key: str) -> Manifest | None:
    """The manifest of the extract at ``key``, or None while it is not committed."""
    data = store.get(f"{key}/{MANIFEST}")
    if data is None:
        return None
    return Manifest.from_json(json.loads(data), store, key)


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Commit an extract in a local folder (see :func:`commit_manifest`)."""
    commit_manifest(LocalStore(folder.parent), folder.name, manifest)
    return folder / MANIFEST


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the extract in a local folder (which must be committed)."""
    manifest = load_manifest(LocalStore(folder.parent), folder.name)
    if manifest is None:
        raise FileNotFoundError(folder / MANIFEST)
    return manifest
