"""Loads that read a relation's extracts keep retention from removing them meanwhile.

An extract commits, then removes the relation's extracts older than ``lake.keep`` full
ones. A load lists a relation's chain of manifests when it begins and reads the parts
later, maybe hours later; a pipeline's secondary environment reads the chain its primary
read. Had retention removed them in between, the load would fail for want of files.

So a run that reads a relation's extracts holds a shared ``flock`` on ``.readers`` in the
relation's folder from before it lists the chain until the run ends, and retention takes
that lock exclusively without waiting: while anyone reads, nothing is removed, and the next
extract after the reads removes what is then too old. The kernel releases the locks of a
process that dies.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

READERS = ".readers"


class ReadLocks:
    """The shared locks one run holds on the relations whose extracts it reads."""

    def __init__(self) -> None:
        self._held: dict[Path, IO[str]] = {}
        self._mutex = threading.Lock()

    def hold(self, folder: Path) -> None:
        """Hold a relation's folder for reading until :meth:`release` (idempotent; no folder: nothing to hold)."""
        if not folder.is_dir():
            return
        path = folder / READERS
        with self._mutex:
            if path in self._held:
                return
            handle = open(path, "a+")  # noqa: SIM115 - held until release
            fcntl.flock(handle, fcntl.LOCK_SH)  # waits only for a retention pass that is under way
            self._held[path] = handle

    def release(self) -> None:
        """Let every lock go."""
        with self._mutex:
            for handle in self._held.values():
                handle.close()
            self._held.clear()


@contextmanager
def unread(folder: Path) -> Iterator[bool]:
    """Whether nobody reads the relation's extracts now; while it says so, no reader can begin."""
    with open(folder / READERS, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
