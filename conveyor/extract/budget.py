"""The extract's memory budget (``defaults.memory_budget_mib``), shared out among its reads.

A process holds its interpreter and libraries (about :data:`BASE_BYTES`) and, per read that
runs at once (one per worker), a batch being converted, the batches queued between the
reader and the writer, the driver's read-ahead, and the Parquet writer's open row group.
Each read gets an equal share of what is left, and every one of those buffers is sized in
bytes from that share and the table's row width, so a wide table reads smaller batches
and the memory does not grow with the table's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

MIB = 1 << 20
#: what the interpreter, pyarrow, the drivers and Conveyor itself take before any read
BASE_BYTES = 160 * MIB
#: the least a read gets, however small the budget and however many workers
MIN_SHARE = 24 * MIB
#: bytes assumed per value of a variable-width column (text, bytes, JSON), offsets included
VARIABLE_WIDTH = 40


@dataclass(frozen=True)
class Budget:
    """What one read (one partition) may hold, from the process's budget and its workers."""

    total_bytes: int = 256 * MIB
    reads: int = 1
    max_batch_rows: int = 65_536

    @property
    def share(self) -> int:
        """Bytes for one read: an equal part of the budget above :data:`BASE_BYTES`."""
        return max((self.total_bytes - BASE_BYTES) // max(self.reads, 1), MIN_SHARE)

    @property
    def batch_bytes(self) -> int:
        """One batch: an eighth of the share (the raw and converted batch live at once)."""
        return self.share // 8

    @property
    def queue_bytes(self) -> int:
        """Batches read ahead of the writer: a quarter of the share."""
        return self.share // 4

    @property
    def buffer_bytes(self) -> int:
        """A driver's own read-ahead (``ReadRequest.buffer_bytes``): an eighth of the share."""
        return self.share // 8

    def batch_rows(self, schema: pa.Schema) -> int:
        """Rows per batch: :attr:`batch_bytes` of rows, at most ``max_batch_rows``, at least 1,024."""
        return max(1_024, min(self.max_batch_rows, self.batch_bytes // row_width(schema)))

    def row_group_rows(self, schema: pa.Schema) -> int:
        """Rows per Parquet row group: a quarter of the share in Arrow bytes (the writer keeps the
        group's pages, compressed, and its dictionaries until the group is complete)."""
        return max(8_192, min(1_048_576, (self.share // 4) // row_width(schema)))


def row_width(schema: pa.Schema) -> int:
    """Estimated Arrow bytes per row: fixed widths as they are, :data:`VARIABLE_WIDTH` per
    variable-width value, one byte of validity per column."""
    import pyarrow as pa

    width = 0
    for field in schema:
        kind = field.type
        try:
            width += max(kind.bit_width // 8, 1)
        except ValueError:  # not fixed-width: strings, binary, lists, JSON
            width += VARIABLE_WIDTH * (4 if pa.types.is_list(kind) or pa.types.is_large_list(kind) else 1)
        width += 1
    return max(width, 1)


def return_freed_memory() -> None:
    """Make Arrow give freed memory back to the system at once (jemalloc, no decay).

    Arrow's default allocator (mimalloc) keeps what a batch freed for later batches, which
    measured about 35 MB more resident memory on an extract of TPC-H ``lineitem``; the peak
    is what the budget bounds. Where pyarrow was built without jemalloc this does nothing.
    """
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return
    pa.set_memory_pool(pool)
