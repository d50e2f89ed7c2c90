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

import hashlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from conveyor.errors import ConveyorError, LakeError
from conveyor.faults import crash_point
from conveyor.lake.locks import FileLocks, Held, LakeLocks, PostgresLocks
from conveyor.lake.manifest import MANIFEST, Manifest, PartFile, commit_manifest, load_manifest
from conveyor.lake.parts import PartWriter
from conveyor.lake.store import LocalStore, Store, check_key, copy_hashed, open_store, store_error

if TYPE_CHECKING:  # pyarrow is imported by the code that writes parts, not by readers of the lake's layout
    import pyarrow as pa

    from conveyor.tracking.store import TrackingStore

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
    """Every committed extract in one local table folder, oldest first (of ``relation`` only, if given)."""
    return _committed(LocalStore(folder), "", relation)


def newest_in(folder: Path) -> Manifest | None:
    """The newest committed extract in one local table folder, whatever relation wrote it."""
    return newest_at(LocalStore(folder), "")


def newest_at(store: Store, folder: str) -> Manifest | None:
    """The newest committed extract under the key ``folder`` of ``store``, whatever relation wrote it."""
    for extract_id in reversed(_extract_folders(store, folder)[0]):
        manifest = load_manifest(store, _join(folder, extract_id))
        if manifest is not None:
            return manifest
    return None


def _join(*keys: str) -> str:
    return "/".join(k for k in keys if k)


def _extract_folders(store: Store, folder: str) -> tuple[list[str], list[str]]:
    """The committed and the uncommitted extract ids under a table folder, each in name order.

    One listing of the folder: on an object store, one LIST request per thousand objects.
    """
    committed: dict[str, bool] = {}
    start = len(folder) + 1 if folder else 0
    for obj in store.objects(folder):
        name, slash, leaf = obj.key[start:].partition("/")
        if not slash or name.startswith(("_", ".")):
            continue  # the folder's own files (.lock, .readers) and staging areas
        committed[name] = committed.get(name, False) or leaf == MANIFEST
    if isinstance(store, LocalStore):  # local folders without any file yet (an extract just begun)
        for name in store.children(folder):
            if not name.startswith(("_", ".")):
                committed.setdefault(name, False)
    names = sorted(committed)
    return [n for n in names if committed[n]], [n for n in names if not committed[n]]


def _committed(store: Store, folder: str, relation: str | None) -> list[Manifest]:
    found = []
    for extract_id in _extract_folders(store, folder)[0]:
        manifest = load_manifest(store, _join(folder, extract_id))
        if manifest is not None and (relation is None or manifest.relation == relation):
            found.append(manifest)
    return found


@dataclass
class ExtractFolder:
    """Where one extract is written: its key in the lake's store and a local folder for parts.

    In a local lake ``folder`` is the extract's own folder. In an object-store lake it is a
    staging folder on local disk: job types that can only write files (``spark``,
    ``command``) write there and :meth:`upload` streams the parts into the store; the
    ``arrow`` job type writes straight to ``store`` under ``key`` (see :attr:`staged`).
    """

    store: Store
    key: str
    folder: Path
    committed: bool = False
    """Set once :meth:`commit` returned (the writer then need not ask the store)."""

    @property
    def extract_id(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def staged(self) -> bool:
        """Whether parts written to :attr:`folder` still have to be uploaded to the store."""
        return not isinstance(self.store, LocalStore)

    def part_writer(
        self,
        schema: pa.Schema,
        *,
        prefix: str = "part",
        part_rows: int = 1_000_000,
        compression: str = "zstd",
        row_group_rows: int = 128 * 1024,
    ) -> PartWriter:
        """A writer of numbered parts into this extract: straight into an object store, else into :attr:`folder`."""
        return PartWriter(
            None if self.staged else self.folder,
            schema,
            prefix=prefix,
            part_rows=part_rows,
            compression=compression,
            row_group_rows=row_group_rows,
            store=self.store if self.staged else None,
            key=self.key if self.staged else "",
        )

    def commit(self, manifest: Manifest) -> str:
        """Commit the extract (:func:`~conveyor.lake.manifest.commit_manifest`); the manifest's location."""
        location = commit_manifest(self.store, self.key, manifest)
        self.committed = True
        return location

    def upload(self, parts: list[PartFile]) -> None:
        """Stream every part staged in :attr:`folder` into the store, checking its sha256 on the way.

        A part the runner already wrote to the store (not in the staging folder) is left as it is.
        """
        if not self.staged:
            return
        for part in parts:
            path = self.folder / part.path
            if not path.is_file():
                continue
            try:
                with open(path, "rb") as source, self.store.open_output(f"{self.key}/{part.path}") as target:
                    digest = copy_hashed(source, target)
            except OSError as exc:
                raise store_error("uploading to", f"{self.store.location}/{self.key}/{part.path}", exc) from None
            if digest != part.sha256:
                raise LakeError(
                    f"the part {part.path} changed while it was uploaded to {self.store.location}/{self.key}."
                )
            crash_point("lake.upload.after_part")

    def clear(self) -> None:
        """Remove every part of a failed attempt, staged or already in the store."""
        for leftover in self.folder.iterdir():
            if leftover.is_file():
                leftover.unlink()
        if self.staged:
            self.store.delete([o.key for o in self.store.objects(self.key)])


class Lake:
    """A lake: a local folder or a prefix of an S3-compatible bucket (:mod:`conveyor.lake.store`).

    Readers take an optional ``legacy`` folder name: the upstream ``<schema>.<table>`` under
    which lakes before relation-owned folders kept a relation's extracts. Its manifests of
    this relation (and only those) count as if they were in the relation's own folder, so an
    old chain continues: a full extract there and increments in the new folder form one chain.

    Writer and reader locks (:mod:`conveyor.lake.locks`) are ``flock`` files: in each
    relation's folder in a local lake, and under ``locks`` (default: a folder per lake
    location in the system's temporary directory) for an object-store lake, whose bucket
    cannot hold a lock. ``locks`` may instead be a :class:`~conveyor.lake.locks.LakeLocks`,
    such as PostgreSQL advisory locks that every host sharing the tracking store sees
    (:func:`lake_for` chooses).
    """

    def __init__(
        self,
        location: Path | str | Store,
        *,
        prefix: str | None = None,
        locks: Path | LakeLocks | None = None,
    ):
        self.store: Store = location if isinstance(location, Store) else open_store(location)
        self.base = "data" if not prefix else f"{check_key(prefix)}/data"
        local = isinstance(self.store, LocalStore)
        #: the lake's local folder (None for an object-store lake)
        self.root: Path | None = self.store.root if isinstance(self.store, LocalStore) else None
        #: the local folder of the extracts (None for an object-store lake)
        self.data: Path | None = self.root / self.base if self.root is not None else None
        #: the folder of the lock files of an object-store lake kept on this machine
        self.locks: Path | None = None
        if isinstance(locks, LakeLocks):
            self.lock_provider: LakeLocks = locks
        else:
            self.locks = self.data if local else (locks or _lock_folder(self.store.location))
            self.lock_provider = FileLocks(self.lock_dir)

    @property
    def where(self) -> str:
        """Where the extracts are, for messages (a folder or ``s3://bucket/prefix/data``)."""
        return f"{self.store.location}/{self.base}"

    @property
    def local(self) -> bool:
        return self.root is not None

    def inside(self, path: Path) -> Path:
        """``path`` itself, after checking that it stays inside the local lake's data folder."""
        assert self.data is not None
        data = os.path.normpath(self.data)
        if os.path.commonpath([data, os.path.normpath(path)]) != data or os.path.normpath(path) == data:
            raise LakeError(f"refusing the path {path}, which is outside the lake folder {self.data}.")
        return path

    def table_key(self, source: str, relation: str) -> str:
        """The key of one relation's extracts (names encoded: one key segment each)."""
        return f"{self.base}/{encode_name(source)}/{encode_name(relation)}"

    def table_dir(self, source: str, relation: str) -> Path:
        """The local folder of one relation's extracts (names encoded, never outside the lake)."""
        assert self.data is not None, "an object-store lake has no local folders"
        return self.inside(self.data / encode_name(source) / encode_name(relation))

    def lock_dir(self, source: str, relation: str) -> Path:
        """The local folder holding the relation's writer lock (``.lock``) and readers' lock (``.readers``)."""
        if self.data is not None:
            return self.table_dir(source, relation)
        if self.locks is None:
            raise LakeError(f"the locks of the lake {self.store.location} are not files on this machine.")
        folder = self.locks / encode_name(source) / encode_name(relation)
        folder.mkdir(parents=True, exist_ok=True)  # on this machine, not in the bucket
        return folder

    def _folders(self, source: str, relation: str, legacy: str | None) -> list[str]:
        own = self.table_key(source, relation)
        if legacy is None or not _is_plain(legacy) or legacy == own.rsplit("/", 1)[-1]:
            return [own]
        return [own, f"{self.base}/{encode_name(source)}/{legacy}"]

    def committed(self, source: str, relation: str, *, legacy: str | None = None) -> list[Manifest]:
        """Every committed extract of a relation, oldest first."""
        found = {
            m.extract_id: m
            for f in self._folders(source, relation, legacy)
            for m in _committed(self.store, f, relation)
        }
        return [found[key] for key in sorted(found)]

    def latest(self, source: str, relation: str, *, legacy: str | None = None) -> Manifest | None:
        """The newest committed extract of a relation, or None."""
        candidates = [
            (extract_id, folder)
            for folder in self._folders(source, relation, legacy)
            for extract_id in _extract_folders(self.store, folder)[0]
        ]
        for extract_id, folder in sorted(candidates, reverse=True):
            manifest = load_manifest(self.store, f"{folder}/{extract_id}")
            if manifest is not None and manifest.relation == relation:
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
                f'no committed extract of "{relation}" (source "{source}") in the lake at {self.where}.',
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
    ) -> Iterator[ExtractFolder]:
        """Lock a relation for writing and yield a fresh extract folder.

        Another writer of the same relation (another pipeline's extract, say) is waited for,
        up to ``wait_s`` seconds, telling ``waiting`` once; then the extract fails. Leftovers
        of crashed extracts (folders without a manifest) are removed first: the lock proves
        nobody is still writing them. An extract that ends without a manifest (failed, or
        not committed) is removed as the block ends; one whose manifest was written stays
        committed, whatever failed after. The holder writes ``holder`` (which run it is) and its pid into the
        lock file, so whoever waits for it or gives up can name it.
        """
        locks = self.lock_provider
        held = _take(locks, source, relation, holder, wait_s, waiting)
        if held is None:
            who = locks.holder(source, relation)
            raise LakeError(
                f'another extract of "{relation}" (source "{source}") is running{f" ({who})" if who else ""}'
                + (f" and did not finish within {wait_s:g} s." if wait_s else ".")
                + f" Its lock is {locks.describe(source, relation)}.",
                hint="Wait for it to finish, then extract again, or raise lake.lock_timeout in conveyor.yaml.",
            )
        try:
            table_key = self.table_key(source, relation)
            self._remove_uncommitted(table_key)
            key = f"{table_key}/{new_extract_id()}"
            if self.root is not None:
                folder = self.root / key
                folder.mkdir(parents=True)
            else:  # parts of file-writing job types are staged on local disk, then uploaded
                folder = Path(tempfile.mkdtemp(prefix=f"conveyor-{key.rsplit('/', 1)[-1]}-"))
            target = ExtractFolder(self.store, key, folder)
            # an extract that ends without its manifest (failed, or left uncommitted) goes at once;
            # a committed one stays, whatever failed after
            try:
                yield target
            except BaseException:
                if not target.committed:
                    with suppress(ConveyorError, OSError):  # the store may be what failed: the next writer cleans up
                        self._discard(key)
                raise
            else:
                if not target.committed:
                    self._discard(key)
            finally:
                if target.staged:
                    shutil.rmtree(folder, ignore_errors=True)
        finally:
            held.release()

    def _discard(self, key: str) -> None:
        """Remove the extract at ``key`` unless it was committed."""
        if load_manifest(self.store, key) is None:
            self._remove(key)

    def _remove(self, key: str) -> None:
        """Remove an uncommitted extract folder: its objects, and locally the folder itself."""
        self.store.delete([o.key for o in self.store.objects(key)])
        if self.root is not None:
            shutil.rmtree(self.root / key, ignore_errors=True)

    def _remove_uncommitted(self, table_key: str) -> None:
        for extract_id in _extract_folders(self.store, table_key)[1]:
            self._remove(f"{table_key}/{extract_id}")

    def prune(self, source: str, relation: str, keep: int, *, legacy: str | None = None) -> list[str]:
        """Keep the newest ``keep`` full extracts and every incremental one after the oldest of them.

        Incremental extracts only make sense on top of the full extract before them, so a
        chain is never cut. The manifest goes first, so readers stop trusting a folder
        before its parts disappear. Extracts in a legacy folder age out the same way. While
        a load reads the relation (:mod:`conveyor.lake.readers`) nothing is removed.
        """
        free = self.lock_provider.try_unread(source, relation)
        if free is None:
            return []  # a load reads them: the next extract after it prunes
        try:
            committed = self.committed(source, relation, legacy=legacy)
            full = [i for i, m in enumerate(committed) if not m.incremental]
            if len(full) <= keep:
                return []
            removed = []
            for manifest in committed[: full[-keep]]:
                self.store.delete([f"{manifest.key}/{MANIFEST}"])
                crash_point("lake.prune.after_manifest")
                for part in manifest.part_keys():
                    self.store.delete([part])
                    crash_point("lake.prune.mid_parts")
                self._remove(manifest.key)
                removed.append(manifest.extract_id)
            return removed
        finally:
            free.release()

    def tables(self) -> list[tuple[str, str]]:
        """Every (source, relation) folder in the lake, names decoded."""
        return sorted(
            (decode_name(source), decode_name(relation))
            for source in self.store.children(self.base)
            for relation in self.store.children(f"{self.base}/{source}")
        )


def lake_for(location: Path | str, tracking: TrackingStore | None = None) -> Lake:
    """The lake at ``location`` (a project's ``lake_location``), its locks where every writer sees them.

    An object-store lake of a project whose tracking store is on PostgreSQL takes its writer
    and readers' locks as advisory locks there (:class:`~conveyor.lake.locks.PostgresLocks`),
    so hosts sharing the store never write one relation at once, and retention on one never
    removes what a load on another reads. A local lake, or one tracked in SQLite (a single
    machine), keeps ``flock`` files.
    """
    store = open_store(location)
    dsn = tracking.server_dsn if tracking is not None else None
    if dsn is None or isinstance(store, LocalStore):
        return Lake(store)
    key = (os.getpid(), dsn, store.location)  # a forked child opens sessions of its own
    with _LOCKS_MUTEX:
        locks = _POSTGRES_LOCKS.get(key)
        if locks is None:
            # one per process: every read lock of the process shares its one readers' session
            locks = _POSTGRES_LOCKS[key] = PostgresLocks(dsn, store.location)
    return Lake(store, locks=locks)


_POSTGRES_LOCKS: dict[tuple[int, str, str], PostgresLocks] = {}
_LOCKS_MUTEX = threading.Lock()


def _lock_folder(location: str) -> Path:
    """Where this machine keeps the locks of an object-store lake (one folder per location)."""
    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "conveyor-lake-locks" / digest


def _take(
    locks: LakeLocks,
    source: str,
    relation: str,
    holder: str,
    wait_s: float,
    waiting: Callable[[str], None] | None,
) -> Held | None:
    """The relation's writer lock, polled up to ``wait_s`` seconds (telling ``waiting`` once); None if still taken."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        held = locks.try_write(source, relation, holder)
        if held is not None:
            locks.close()
            return held
        if time.monotonic() >= deadline:
            locks.close()
            return None
        if not told and waiting is not None:
            who = locks.holder(source, relation)
            waiting(f'waiting for another extract of "{relation}" to finish{f" ({who})" if who else ""}')
        told = True
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
