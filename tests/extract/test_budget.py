"""The memory budget's shares and the bounded queue between a reader and the Parquet writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from conveyor.extract.budget import BASE_BYTES, MIB, MIN_SHARE, Budget, row_width
from conveyor.extract.runners.pipeline import ByteQueue, read_ahead


def test_share_splits_the_budget_above_the_base_among_reads() -> None:
    assert Budget(BASE_BYTES + 96 * MIB, reads=2).share == 48 * MIB
    assert Budget(BASE_BYTES + 96 * MIB, reads=1).share == 96 * MIB
    assert Budget(64 * MIB, reads=8).share == MIN_SHARE


def test_batches_and_row_groups_shrink_with_the_row_width() -> None:
    narrow = pa.schema([("id", pa.int64())])
    wide = pa.schema([(f"c{i}", pa.string()) for i in range(40)])
    budget = Budget(256 * MIB, reads=2, max_batch_rows=65_536)
    assert budget.batch_rows(narrow) == 65_536  # capped by defaults.batch_rows
    assert budget.batch_rows(wide) < 65_536
    assert budget.batch_rows(wide) * row_width(wide) <= budget.batch_bytes
    assert budget.row_group_rows(wide) < budget.row_group_rows(narrow)


def batches(count: int, rows: int = 1_000) -> Iterator[pa.RecordBatch]:
    for i in range(count):
        yield pa.record_batch([pa.array(range(i * rows, (i + 1) * rows), pa.int64())], names=["n"])


def test_read_ahead_keeps_order_and_content() -> None:
    got = list(read_ahead(batches(50), capacity=64 * 1024))
    assert [b.column(0)[0].as_py() for b in got] == [i * 1_000 for i in range(50)]


def test_read_ahead_stays_within_its_bytes() -> None:
    produced: list[int] = []
    size = next(batches(1)).get_total_buffer_size()

    def counting() -> Iterator[pa.RecordBatch]:
        for batch in batches(40):
            produced.append(1)
            yield batch

    consumed = 0
    for _ in read_ahead(counting(), capacity=4 * size):
        consumed += 1
        time.sleep(0.005)  # a slow writer
        # queued (at most 4) + the one the reader holds waiting to queue it + the one taken
        assert len(produced) - consumed <= 5
    assert consumed == 40


def test_a_reader_error_is_raised_in_the_writer() -> None:
    def failing() -> Iterator[pa.RecordBatch]:
        yield from batches(3)
        raise RuntimeError("lost the server")

    with pytest.raises(RuntimeError, match="lost the server"):
        list(read_ahead(failing(), capacity=1 << 20))


def test_a_writer_that_stops_closes_the_reader_on_its_thread() -> None:
    closed = threading.Event()

    def endless() -> Iterator[pa.RecordBatch]:
        try:
            while True:
                yield from batches(1)
        finally:
            closed.set()

    stream = read_ahead(endless(), capacity=1 << 16)
    next(stream)
    stream.close()
    assert closed.is_set()


def test_one_batch_larger_than_the_capacity_still_passes() -> None:
    queue = ByteQueue(10)
    assert queue.put("big", 1_000)
    assert queue.get() == "big"
    queue.close()
    assert not queue.put("after", 1)
