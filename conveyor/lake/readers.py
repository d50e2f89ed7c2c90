"""Loads that read a relation's extracts keep retention from removing them meanwhile.

An extract commits, then removes the relation's extracts older than ``lake.keep`` full
ones. A load lists a relation's chain of manifests when it begins and reads the parts
later, maybe hours later; a pipeline's secondary environment reads the chain its primary
read. Had retention removed them in between, the load would fail for want of files.

So a run that reads a relation's extracts holds the relation's readers' lock shared from
before it lists the chain until the run ends, and retention takes that lock exclusively
without waiting: while anyone reads, nothing is removed, and the next extract after the
reads removes what is then too old. The lock is a ``flock`` on ``.readers`` in the
relation's folder, or a PostgreSQL advisory lock that every host sharing the tracking store
sees (:mod:`conveyor.lake.locks`); either is released when its holder dies.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.lake.locks import READERS, FileLocks, Held, LakeLocks

if TYPE_CHECKING:
    from conveyor.lake.lake import Lake

__all__ = ["READERS", "ReadLocks", "unread"]


class ReadLocks:
    """The shared locks one run holds on the relations whose extracts it reads."""

    def __init__(self) -> None:
        self._held: dict[object, Held] = {}
        self._mutex = threading.Lock()

    def hold(self, folder: Path | Lake, source: str = "", relation: str = "") -> None:
        """Hold a relation for reading until :meth:`release` (idempotent; nothing extracted: nothing to hold).

        ``hold(lake, source, relation)`` takes the lake's own readers' lock (a file or an
        advisory lock); ``hold(folder)`` the ``.readers`` file in a local folder.
        """
        locks: LakeLocks
        if isinstance(folder, Path):
            place: object = folder
            locks = FileLocks(lambda _source, _relation: folder)
        else:
            place = (type(folder.lock_provider).__name__, folder.store.location, source, relation)
            locks = folder.lock_provider
        with self._mutex:
            if place in self._held:
                return
            held = locks.read(source, relation)
            if held is not None:
                self._held[place] = held

    def release(self) -> None:
        """Let every lock go."""
        with self._mutex:
            for held in self._held.values():
                held.release()
            self._held.clear()


@contextmanager
def unread(folder: Path) -> Iterator[bool]:
    """Whether nobody reads the relation whose lock files are in ``folder``; while it says so, no reader can begin."""
    held = FileLocks(lambda _source, _relation: folder).try_unread("", "")
    try:
        yield held is not None
    finally:
        if held is not None:
            held.release()
