"""The lake: ``<lake>/data/<source>/<schema>.<table>/<extract-id>/part-*.parquet``.

Extract folders are immutable once committed. Extract ids sort by time, so the newest
committed extract of a table is the last folder (in name order) that has a manifest.
Writers of one table take an exclusive lock file, so two extracts of the same table never
clean up each other's work; the lock is released by the kernel if the holder dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.errors import LakeError
from conveyor.lake.manifest import MANIFEST, Manifest, PartFile, fsync_dir, read_manifest


def new_extract_id(now: datetime | None = None) -> str:
    """A time-sortable, unique extract id such as ``20261121T060102123456Z-3fa9c1``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


class Lake:
    """A local lake folder. (Object stores plug in behind the same methods later.)"""

    def __init__(self, root: Path, *, prefix: str | None = None):
        self.root = root
        self.data = root / "data" if not prefix else root / prefix / "data"

    def table_dir(self, source: str, upstream_table: str) -> Path:
        return self.data / source / upstream_table

    def committed(self, source: str, upstream_table: str) -> list[Manifest]:
        """Every committed extract of a table, oldest first."""
        folder = self.table_dir(source, upstream_table)
        if not folder.is_dir():
            return []
        manifests = []
        for child in sorted(folder.iterdir()):
            if child.is_dir() and (child / MANIFEST).is_file():
                manifests.append(read_manifest(child))
        return manifests

    def latest(self, source: str, upstream_table: str) -> Manifest | None:
        """The newest committed extract of a table, or None."""
        folder = self.table_dir(source, upstream_table)
        if not folder.is_dir():
            return None
        for child in sorted(folder.iterdir(), reverse=True):
            if child.is_dir() and (child / MANIFEST).is_file():
                return read_manifest(child)
        return None

    def chain(self, source: str, upstream_table: str) -> list[Manifest]:
        """What a full load reads: the newest full extract and every incremental one after it."""
        committed = self.committed(source, upstream_table)
        for index in range(len(committed) - 1, -1, -1):
            if not committed[index].incremental:
                return committed[index:]
        return []

    def require_chain(self, source: str, upstream_table: str, relation: str) -> list[Manifest]:
        """Like :meth:`chain`, but a table without a full extract is a user error."""
        found = self.chain(source, upstream_table)
        if not found:
            self.require_latest(source, upstream_table, relation)
            raise LakeError(
                f'the lake has only incremental extracts of "{relation}" and no full one to start from.',
                hint=f'Run "conveyor extract {relation} --full".',
            )
        return found

    def require_latest(self, source: str, upstream_table: str, relation: str) -> Manifest:
        manifest = self.latest(source, upstream_table)
        if manifest is None:
            raise LakeError(
                f'no committed extract of "{relation}" (source "{source}", table {upstream_table}) '
                f"in the lake at {self.data}.",
                hint=f'Run "conveyor extract {relation}" first.',
            )
        return manifest

    @contextmanager
    def writing(self, source: str, upstream_table: str) -> Iterator[Path]:
        """Lock a table for writing and yield a fresh extract folder.

        Leftovers of crashed extracts (folders without a manifest) are removed first: the
        lock proves nobody is still writing them.
        """
        table_dir = self.table_dir(source, upstream_table)
        table_dir.mkdir(parents=True, exist_ok=True)
        with open(table_dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LakeError(
                    f"another extract of {source}/{upstream_table} is running (lock {table_dir / '.lock'}).",
                    hint="Wait for it to finish.",
                ) from None
            self._remove_uncommitted(table_dir)
            folder = table_dir / new_extract_id()
            folder.mkdir()
            try:
                yield folder
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise

    @staticmethod
    def _remove_uncommitted(table_dir: Path) -> None:
        for child in table_dir.iterdir():
            if child.is_dir() and not (child / MANIFEST).is_file():
                shutil.rmtree(child, ignore_errors=True)

    def prune(self, source: str, upstream_table: str, keep: int) -> list[str]:
        """Keep the newest ``keep`` full extracts and every incremental one after the oldest of them.

        Incremental extracts only make sense on top of the full extract before them, so a
        chain is never cut. The manifest goes first, so readers stop trusting a folder
        before its parts disappear.
        """
        committed = self.committed(source, upstream_table)
        full = [i for i, m in enumerate(committed) if not m.incremental]
        if len(full) <= keep:
            return []
        removed = []
        for manifest in committed[: full[-keep]]:
            assert manifest.folder is not None
            (manifest.folder / MANIFEST).unlink()
            shutil.rmtree(manifest.folder, ignore_errors=True)
            removed.append(manifest.extract_id)
        return removed

    def tables(self) -> list[tuple[str, str]]:
        """Every (source, upstream_table) folder in the lake."""
        if not self.data.is_dir():
            return []
        return sorted((s.name, t.name) for s in self.data.iterdir() if s.is_dir() for t in s.iterdir() if t.is_dir())


class _HashingFile:
    """A write-only file that hashes what passes through it (for manifest checksums)."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def tell(self) -> int:
        return self.size

    @property
    def closed(self) -> bool:
        return self.handle.closed

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


@dataclass
class PartWriter:
    """Writes a stream of batches into numbered Parquet parts, rolling over every ``part_rows``."""

    folder: Path
    schema: pa.Schema
    prefix: str = "part"
    part_rows: int = 1_000_000
    compression: str = "zstd"
    parts: list[PartFile] = field(default_factory=list)
    _writer: pq.ParquetWriter | None = None
    _file: _HashingFile | None = None
    _rows: int = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if not batch.schema.equals(self.schema):
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        offset = 0
        while offset < batch.num_rows:
            if self._writer is None:
                self._open()
            take = min(batch.num_rows - offset, self.part_rows - self._rows)
            assert self._writer is not None
            self._writer.write_batch(batch.slice(offset, take), row_group_size=128 * 1024)
            self._rows += take
            offset += take
            if self._rows >= self.part_rows:
                self._close()

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.parts):05d}.parquet"
        self._file = _HashingFile(open(self.folder / name, "wb"))  # noqa: SIM115 - closed in _close
        compression = None if self.compression == "none" else self.compression
        self._writer = pq.ParquetWriter(self._file, self.schema, compression=compression, store_schema=True)
        self._rows = 0
        self._name = name

    def _close(self) -> None:
        assert self._writer is not None and self._file is not None
        self._writer.close()
        self._file.close()
        self.parts.append(PartFile(self._name, self._rows, self._file.size, self._file.digest.hexdigest()))
        self._writer = self._file = None

    def close(self) -> list[PartFile]:
        """Finish the open part; an empty extract still gets one (empty) part with the schema."""
        if self._writer is None and not self.parts:
            self._open()
        if self._writer is not None:
            self._close()
        fsync_dir(self.folder)
        return self.parts

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                assert self._file is not None
                self._file.handle.close()
            self._writer = self._file = None
