"""The lake: ``<lake>/data/<source>/<relation>/<extract-id>/part-*.parquet``.

Each relation (design name, e.g. ``shop.rental``) owns its folder: its extracts, its writer
lock, its watermark. Two designs over one upstream table never share anything. Extract
folders are immutable once committed. Extract ids sort by time, so the newest committed
extract is the last folder (in name order) with a manifest for that relation. Writers of
one relation take an exclusive lock file, so two extracts of the same relation never clean
up each other's work; the kernel releases the lock if the holder dies.

Every name used as a path component is encoded (:func:`encode_name`) and every built path
is checked to stay inside the lake (:meth:`Lake.inside`), so no upstream or design name can
reach outside it.

Lakes written before relations owned their folders keep extracts under the upstream
``<schema>.<table>`` name. Readers still take them, but only manifests whose ``relation``
is the relation asked for (see ``legacy`` below), so nothing is mixed and no migration runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO
from urllib.parse import unquote

from conveyor.errors import LakeError
from conveyor.faults import crash_point
from conveyor.lake.manifest import MANIFEST, Manifest, PartFile, fsync_dir, read_manifest
from conveyor.lake.readers import unread

if TYPE_CHECKING:  # pyarrow is imported by the code that writes parts, not by readers of the lake's layout
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conveyor.lake.store import Store

#: characters that cannot appear in a path component as they are; each is percent-encoded
_ENCODED = {"%": "%25", "/": "%2F", "\\": "%5C", "\x00": "%00"}
#: the longest file name Linux and macOS file systems accept, in bytes
_NAME_MAX = 255


def new_extract_id(now: datetime | None = None) -> str:
    """A time-sortable, unique extract id such as ``20261121T060102123456Z-3fa9c1``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def encode_name(name: str) -> str:
    """``name`` as one path component, reversibly (:func:`decode_name` gives it back).

    ``%``, ``/``, ``\\`` and NUL are percent-encoded, and so is a leading dot: no name can
    be ``.``, ``..``, a hidden file such as the ``.lock`` or span several folders.
    """
    if not name:
        raise LakeError("an empty name cannot name a folder in the lake.")
    text = "".join(_ENCODED.get(char, char) for char in name)
    if text.startswith("."):
        text = "%2E" + text[1:]
    if len(text.encode("utf-8")) > _NAME_MAX:
        raise LakeError(
            f'the name "{name[:60]}..." is too long to be a folder in the lake ({_NAME_MAX} bytes at most).',
            hint="Give the design or the source a shorter name.",
        )
    return text


def decode_name(component: str) -> str:
    """The name a path component made by :func:`encode_name` stands for."""
    return unquote(component)


def _is_plain(name: str | None) -> bool:
    """Whether ``name`` is its own, safe path component (a legacy folder name must be)."""
    try:
        return bool(name) and encode_name(name or "") == name
    except LakeError:
        return False


def committed_in(folder: Path, relation: str | None = None) -> list[Manifest]:
    """Every committed extract in one table folder, oldest first (of ``relation`` only, if given)."""
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if child.is_dir() and (child / MANIFEST).is_file():
            manifest = read_manifest(child)
            if relation is None or manifest.relation == relation:
                found.append(manifest)
    return found


def newest_in(folder: Path) -> Manifest | None:
    """The newest committed extract in one table folder, whatever relation wrote it."""
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir(), key=lambda p: p.name, reverse=True):
        if child.is_dir() and (child / MANIFEST).is_file():
            return read_manifest(child)
    return None


class Lake:
    """A local lake folder. (Object stores plug in behind the same methods later.)

    Readers take an optional ``legacy`` folder name: the upstream ``<schema>.<table>`` under
    which lakes before relation-owned folders kept a relation's extracts. Its manifests of
    this relation (and only those) count as if they were in the relation's own folder, so an
    old chain continues: a full extract there and increments in the new folder form one chain.
    """

    def __init__(self, root: Path, *, prefix: str | None = None):
        self.root = root
        self.data = root / "data" if not prefix else root / prefix / "data"

    def inside(self, path: Path) -> Path:
        """``path`` itself, after checking that it stays inside the lake's data folder."""
        data = os.path.normpath(self.data)
        if os.path.commonpath([data, os.path.normpath(path)]) != data or os.path.normpath(path) == data:
            raise LakeError(f"refusing the path {path}, which is outside the lake folder {self.data}.")
        return path

    def table_dir(self, source: str, relation: str) -> Path:
        """The folder of one relation's extracts (names encoded, never outside the lake)."""
        return self.inside(self.data / encode_name(source) / encode_name(relation))

    def _folders(self, source: str, relation: str, legacy: str | None) -> list[Path]:
        own = self.table_dir(source, relation)
        if legacy is None or not _is_plain(legacy) or legacy == own.name:
            return [own]
        return [own, self.inside(self.data / encode_name(source) / legacy)]

    def committed(self, source: str, relation: str, *, legacy: str | None = None) -> list[Manifest]:
        """Every committed extract of a relation, oldest first."""
        found = {m.extract_id: m for f in self._folders(source, relation, legacy) for m in committed_in(f, relation)}
        return [found[key] for key in sorted(found)]

    def latest(self, source: str, relation: str, *, legacy: str | None = None) -> Manifest | None:
        """The newest committed extract of a relation, or None."""
        candidates = [
            child
            for folder in self._folders(source, relation, legacy)
            if folder.is_dir()
            for child in folder.iterdir()
            if child.is_dir() and (child / MANIFEST).is_file()
        ]
        for child in sorted(candidates, key=lambda p: p.name, reverse=True):
            manifest = read_manifest(child)
            if manifest.relation == relation:
                return manifest
        return None

    def chain(self, source: str, relation: str, *, legacy: str | None = None) -> list[Manifest]:
        """What a full load reads: the newest full extract and every incremental one after it."""
        committed = self.committed(source, relation, legacy=legacy)
        for index in range(len(committed) - 1, -1, -1):
            if not committed[index].incremental:
                return committed[index:]
        return []

    def require_chain(self, source: str, relation: str, *, legacy: str | None = None) -> list[Manifest]:
        """Like :meth:`chain`, but a relation without a full extract is a user error."""
        found = self.chain(source, relation, legacy=legacy)
        if not found:
            self.require_latest(source, relation, legacy=legacy)
            raise LakeError(
                f'the lake has only incremental extracts of "{relation}" and no full one to start from.',
                hint=f'Run "conveyor extract {relation} --full".',
            )
        return found

    def require_latest(self, source: str, relation: str, *, legacy: str | None = None) -> Manifest:
        manifest = self.latest(source, relation, legacy=legacy)
        if manifest is None:
            raise LakeError(
                f'no committed extract of "{relation}" (source "{source}") in the lake at {self.data}.',
                hint=f'Run "conveyor extract {relation}" first.',
            )
        return manifest

    @contextmanager
    def writing(
        self,
        source: str,
        relation: str,
        *,
        wait_s: float = 0,
        waiting: Callable[[str], None] | None = None,
        holder: str = "",
    ) -> Iterator[Path]:
        """Lock a relation for writing and yield a fresh extract folder.

        Another writer of the same relation (another pipeline's extract, say) is waited for,
        up to ``wait_s`` seconds, telling ``waiting`` once; then the extract fails. Leftovers
        of crashed extracts (folders without a manifest) are removed first: the lock proves
        nobody is still writing them. A failure after the manifest was written leaves the
        extract committed. The holder writes ``holder`` (which run it is) and its pid into the
        lock file, so whoever waits for it or gives up can name it.
        """
        table_dir = self.table_dir(source, relation)
        table_dir.mkdir(parents=True, exist_ok=True)
        path = table_dir / ".lock"
        with open(path, "a+") as lock:  # "a+": opening must not erase the holder's text

            def tell() -> None:
                if waiting is not None:
                    waiting(f'waiting for another extract of "{relation}" to finish{_lock_holder(path)}')

            if not _flock(lock, wait_s, tell):
                raise LakeError(
                    f'another extract of "{relation}" (source "{source}") is running{_lock_holder(path)}'
                    + (f" and did not finish within {wait_s:g} s." if wait_s else ".")
                    + f" Its lock is {path}.",
                    hint="Wait for it to finish, then extract again, or raise lake.lock_timeout in conveyor.yaml.",
                )
            lock.seek(0)
            lock.truncate()
            lock.write(f"{holder + ', ' if holder else ''}pid {os.getpid()} on {socket.gethostname()}\n")
            lock.flush()
            self._remove_uncommitted(table_dir)
            folder = table_dir / new_extract_id()
            folder.mkdir()
            try:
                yield folder
            except BaseException:
                if not (folder / MANIFEST).is_file():  # a committed extract stays, whatever failed after
                    shutil.rmtree(folder, ignore_errors=True)
                raise

    @staticmethod
    def _remove_uncommitted(table_dir: Path) -> None:
        for child in table_dir.iterdir():
            if child.is_dir() and not (child / MANIFEST).is_file():
                shutil.rmtree(child, ignore_errors=True)

    def prune(self, source: str, relation: str, keep: int, *, legacy: str | None = None) -> list[str]:
        """Keep the newest ``keep`` full extracts and every incremental one after the oldest of them.

        Incremental extracts only make sense on top of the full extract before them, so a
        chain is never cut. The manifest goes first, so readers stop trusting a folder
        before its parts disappear. Extracts in a legacy folder age out the same way. While
        a load reads the relation (:mod:`conveyor.lake.readers`) nothing is removed.
        """
        with unread(self.table_dir(source, relation)) as free:
            if not free:
                return []  # a load reads them: the next extract after it prunes
            committed = self.committed(source, relation, legacy=legacy)
            full = [i for i, m in enumerate(committed) if not m.incremental]
            if len(full) <= keep:
                return []
            removed = []
            for manifest in committed[: full[-keep]]:
                assert manifest.folder is not None
                (manifest.folder / MANIFEST).unlink()
                crash_point("lake.prune.after_manifest")
                for part in manifest.paths():
                    part.unlink(missing_ok=True)
                    crash_point("lake.prune.mid_parts")
                shutil.rmtree(manifest.folder, ignore_errors=True)
                removed.append(manifest.extract_id)
            return removed

    def tables(self) -> list[tuple[str, str]]:
        """Every (source, relation) folder in the lake, names decoded."""
        if not self.data.is_dir():
            return []
        return sorted(
            (decode_name(s.name), decode_name(t.name))
            for s in self.data.iterdir()
            if s.is_dir()
            for t in s.iterdir()
            if t.is_dir()
        )


def _lock_holder(path: Path) -> str:
    """`` (extract run ID, pid N on HOST)`` as the holder of a relation's lock wrote it, or ""."""
    try:
        text = " ".join(path.read_text().split())
    except OSError:
        return ""
    return f" ({text})" if text else ""


def _flock(handle: IO[str], wait_s: float, first_wait: Callable[[], None]) -> bool:
    """Take an exclusive flock, polling up to ``wait_s`` seconds; False when it stays taken."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            if not told:
                first_wait()
                told = True
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


class _HashingFile:
    """A write-only file that hashes what passes through it (for manifest checksums).

    ``handle`` is a local file (fsynced on close) or a store's output stream
    (``fsync=False``: closing it is what makes it durable, e.g. completes a multipart upload).
    """

    def __init__(self, handle: BinaryIO | pa.NativeFile, *, fsync: bool = True):
        self.handle = handle
        self.fsync = fsync
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
        if self.fsync:
            os.fsync(self.handle.fileno())
        self.handle.close()


@dataclass
class PartWriter:
    """Writes a stream of batches into numbered Parquet parts, rolling over every ``part_rows``.

    The writer holds a row group's encoded pages until the group is complete, so
    ``row_group_rows`` bounds its buffer (see :func:`conveyor.extract.budget.Budget`).

    Parts go into the local ``folder``, or, given a ``store``, stream to
    ``<key>/<part name>`` in it (``folder`` is then unused).
    """

    folder: Path | None
    schema: pa.Schema
    prefix: str = "part"
    part_rows: int = 1_000_000
    compression: str = "zstd"
    row_group_rows: int = 128 * 1024
    store: Store | None = None
    key: str = ""
    parts: list[PartFile] = field(default_factory=list)
    _writer: pq.ParquetWriter | None = None
    _file: _HashingFile | None = None
    _rows: int = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if not batch.schema.equals(self.schema):
            import pyarrow as pa

            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        offset = 0
        while offset < batch.num_rows:
            if self._writer is None:
                self._open()
            take = min(batch.num_rows - offset, self.part_rows - self._rows)
            assert self._writer is not None
            self._writer.write_batch(batch.slice(offset, take), row_group_size=self.row_group_rows)
            self._rows += take
            offset += take
            if self._rows >= self.part_rows:
                self._close()

    def _open(self) -> None:
        import pyarrow.parquet as pq

        name = f"{self.prefix}-{len(self.parts):05d}.parquet"
        if self.store is not None:
            self._file = _HashingFile(self.store.open_output(f"{self.key}/{name}"), fsync=False)
        else:
            assert self.folder is not None
            self._file = _HashingFile(open(self.folder / name, "wb"))  # noqa: SIM115 - closed in _close
        self._writer = pq.ParquetWriter(self._file, self.schema, **parquet_options(self.schema, self.compression))
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
        if self.store is None:
            assert self.folder is not None
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


def rewrite_part(path: Path, table: pa.Table, compression: str = "zstd") -> PartFile:
    """Replace one part of an uncommitted extract with ``table`` (same schema), durably.

    The new file is written beside the old one, fsynced and renamed over it, so the folder
    holds the old part or the new one, never half of either.
    """
    import pyarrow.parquet as pq

    temp = path.with_name(f".{path.name}.tmp")
    handle = _HashingFile(open(temp, "wb"))  # noqa: SIM115 - closed below
    try:
        with pq.ParquetWriter(handle, table.schema, **parquet_options(table.schema, compression)) as writer:
            writer.write_table(table, row_group_size=128 * 1024)
    finally:
        handle.close()
    os.replace(temp, path)
    fsync_dir(path.parent)
    return PartFile(path.name, table.num_rows, handle.size, handle.digest.hexdigest())


def parquet_options(schema: pa.Schema, compression: str) -> dict[str, object]:
    """How every part is written (``pq.ParquetWriter`` keywords), chosen for write cost and size.

    * decimals of precision 18 or less are stored as INT32/INT64 (Parquet's DECIMAL on an
      integer, as Spark writes them), not as 16-byte binaries; Arrow reads them back as the
      same ``decimal128(p, s)`` (the part keeps the Arrow schema), DuckDB as ``DECIMAL(p,s)``;
    * only string and binary columns are dictionary-encoded: numbers, dates and timestamps
      compress as well without a dictionary, whose hash table is wasted work on a
      high-cardinality column (an order key, a price).

    On TPC-H ``lineitem`` the two together cut the writer's instructions by 9% (callgrind)
    and the parts' size by 8%.
    """
    return {
        "compression": None if compression == "none" else compression,
        "store_schema": True,
        "store_decimal_as_integer": True,
        "use_dictionary": _dictionary_columns(schema) or False,
    }


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The Parquet leaf paths of the string and binary columns (``tags.list.element`` in a list)."""
    import pyarrow as pa

    text_like = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)

    def leaves(path: str, type_: pa.DataType) -> Iterator[str]:
        while isinstance(type_, pa.BaseExtensionType):
            type_ = type_.storage_type
        if pa.types.is_list(type_) or pa.types.is_large_list(type_):
            yield from leaves(f"{path}.list.element", type_.value_type)
        elif pa.types.is_struct(type_):
            for child in type_:
                yield from leaves(f"{path}.{child.name}", child.type)
        elif any(check(type_) for check in text_like):
            yield path

    return [leaf for field_ in schema for leaf in leaves(field_.name, field_.type)]
