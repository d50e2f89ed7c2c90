"""Reading ahead of the writer, within a number of bytes.

:func:`read_ahead` runs a source's batch iterator on a thread of its own, so the source's
decoding and conversion overlap the Parquet writer's encoding and compression, and hands
the batches over through a :class:`ByteQueue`: the reader waits while the batches it has
queued hold more than the queue's capacity, so a fast upstream never piles up in memory.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator, Iterator
from typing import Any

import pyarrow as pa

_END = object()


class ByteQueue:
    """Batches between one reader and one writer, bounded by their buffers' bytes.

    ``put`` waits while the queue holds ``capacity`` bytes or more (a batch larger than the
    capacity still goes into an empty queue, so nothing can wedge). ``close`` (the writer
    gave up) makes every ``put`` return False at once.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: Any, size: int) -> bool:
        """Queue ``item`` of ``size`` bytes; False when the writer closed the queue."""
        with self._cond:
            while not self._closed and self._items and self._bytes + size > self.capacity:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append((item, size))
            self._bytes += size
            self._cond.notify_all()
            return True

    def get(self) -> Any:
        """The next item, waiting for the reader."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            item, size = self._items.popleft()
            self._bytes -= size
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(batches: Iterator[pa.RecordBatch], capacity: int) -> Generator[pa.RecordBatch, None, None]:
    """Yield ``batches``, read on a thread of their own at most ``capacity`` bytes ahead.

    The reader's exception is raised here, in the writer's thread. When the writer stops
    early (an error, a cancelled run), the reader stops at its next batch and its iterator
    is closed on its own thread (so the source's cleanup runs) before this returns.
    """
    queue = ByteQueue(capacity)

    def read() -> None:
        try:
            for batch in batches:
                if not queue.put(batch, batch.get_total_buffer_size()):
                    return
            queue.put(_END, 0)
        except BaseException as exc:  # handed to the writer's thread
            queue.put(_Failed(exc), 0)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=read, name="conveyor-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        queue.close()
        thread.join()
