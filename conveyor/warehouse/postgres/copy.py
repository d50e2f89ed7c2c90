"""Loading Parquet parts with ``COPY ... FROM STDIN (FORMAT binary, FREEZE)``: batches are encoded by
:mod:`.binary` in a second thread while the server ingests the previous ones.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.errors
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pyarrow.fs as pafs

from conveyor.faults import crash_point
from conveyor.warehouse.base import (
    qualified,
    quote,
)
from conveyor.warehouse.postgres.binary import CopyEncoder
from conveyor.warehouse.postgres.binary_layout import SIGNATURE, TRAILER

BATCH_BYTES = 4 * 1024 * 1024
"""Uncompressed Parquet bytes per batch read and encoded."""
QUEUE_DEPTH = 4
"""Encoded chunks waiting for the server: bounds a load's memory."""


def copy_parquet(
    con: psycopg.Connection[Any],
    table: str,
    encoder: CopyEncoder,
    paths: Sequence[Path | str],
    schema: pa.Schema,
    *,
    freeze: bool = True,
    filesystem: pafs.FileSystem | None = None,
) -> int:
    """COPY the Parquet files into ``table``; returns rows.

    ``paths`` are local files, or paths in ``filesystem`` (an object store's, read with
    ranged requests as the encoder goes).

    With ``freeze`` the table must have been created or truncated in the current
    (sub)transaction: its rows are written frozen, which saves vacuuming them later.

    A thread reads and encodes batches while this one sends them, through a queue of
    :data:`QUEUE_DEPTH` chunks, so memory stays bounded whatever the size of the data.
    """
    columns = ", ".join(quote(c) for c in encoder.copy_columns)
    options = "FORMAT binary, FREEZE" if freeze else "FORMAT binary"
    statement = f"COPY {qualified(table)} ({columns}) FROM STDIN ({options})"
    with _Encoded(paths, encoder, schema, filesystem) as chunks, con.cursor() as cursor:
        with cursor.copy(statement) as copy:
            copy.write(SIGNATURE)
            for chunk in chunks:
                copy.write(chunk)
                crash_point("pg.copy.batch")
            copy.write(TRAILER)
        return max(cursor.rowcount, 0)


_END = object()


class _Encoded:
    """Encoded COPY chunks of Parquet files, produced by a background thread."""

    def __init__(
        self, paths: Sequence[Path | str], encoder: CopyEncoder, schema: pa.Schema, filesystem: pafs.FileSystem | None
    ):
        self.paths, self.encoder, self.schema, self.filesystem = list(paths), encoder, schema, filesystem
        self.names = encoder.copy_columns
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, name="conveyor-pgcopy", daemon=True)

    def __enter__(self) -> Iterator[pa.Buffer]:
        self.thread.start()
        return self._chunks()

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        while self.thread.is_alive():
            with suppress(queue.Empty):
                self.queue.get(timeout=0.05)
        self.thread.join()

    def _chunks(self) -> Iterator[pa.Buffer]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for path in self.paths:
                fs = self.filesystem
                opened = fs.open_input_file(str(path)) if fs is not None else nullcontext(path)
                # on an object store, a row group's column chunks are fetched in a few coalesced
                # GETs instead of one request per chunk (25x less wall time on S3, ~70 MB more memory)
                remote = fs is not None and fs.type_name != "local"
                with opened as source, pq.ParquetFile(source, pre_buffer=remote, buffer_size=1 << 20) as parquet:
                    rows = batch_rows(parquet.metadata)
                    for batch in parquet.iter_batches(batch_size=rows, columns=self.names, use_threads=True):
                        for chunk in self.encoder.encode(_conform(batch, self.schema)):
                            if not self._put(chunk):
                                return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)
        else:
            self._put(_END)


def batch_rows(metadata: pq.FileMetaData) -> int:
    """Rows per batch so a batch holds about :data:`BATCH_BYTES` of uncompressed data."""
    if metadata.num_rows == 0 or metadata.num_row_groups == 0:
        return 65_536
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    per_row = max(1.0, size / metadata.num_rows)
    return int(min(131_072, max(1_024, BATCH_BYTES // per_row)))


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast columns whose type differs from the manifest's schema (a part written differently)."""
    changed = False
    arrays = []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        index = schema.get_field_index(field.name)
        expected = schema.field(index).type if index >= 0 else field.type
        if array.type != expected:
            array = array.cast(expected)  # safe cast: lossy conversions are errors
            changed = True
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names) if changed else batch
