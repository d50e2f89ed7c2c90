"""The three ways of loading Arrow into PostgreSQL that bench/ingest_pg compares.

Each loader reads the same Parquet files (batches cast to the same Arrow schema, as
Conveyor's load does) and appends them to an existing table in one transaction, on a
connection opened beforehand, and returns the rows loaded:

* ``conveyor``: ``conveyor.warehouse.postgres.copy_parquet`` with
  ``conveyor.warehouse.postgres.binary.CopyEncoder`` (the product's own path: a background thread
  reads and encodes while the connection sends ``COPY ... FROM STDIN (FORMAT binary)``).
* ``pgpq``: the same pipeline (``copy_parquet``'s reader thread, queue and statement) with
  pgpq's ``ArrowToPostgresBinaryEncoder`` in place of ``CopyEncoder``, so that only the
  encoder differs; it ends with pgpq's ``finish()``, which returns the bytes pgpq buffers. pgpq encodes from the Arrow
  type; where the target column asks for another output pgpq offers (``jsonb``, ``int2``)
  the encoder is built for it, as a user of pgpq would.
* ``adbc``: ``adbc_driver_postgresql.dbapi`` ``cursor.adbc_ingest(mode="append")`` over a
  ``RecordBatchReader`` of the same batches (the driver's C++ binary COPY writer).

``COPY`` runs without ``FREEZE`` for all three (ADBC cannot ask for it), into a table
created and committed beforehand.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TOOLS = ("conveyor", "pgpq", "adbc")
PGPQ_MISSING = (
    "pgpq is not installed in this Python. It is not a Conveyor dependency; make a throw-away "
    "environment for the benchmark:\n"
    "  /work/main/.venv/bin/python -m venv /tmp/bench-venv\n"
    "  /tmp/bench-venv/bin/pip install -r requirements.lock pgpq\n"
    "then run this script with /tmp/bench-venv/bin/python (it re-runs itself there when that venv exists)."
)


def pgpq_available() -> bool:
    try:
        import pgpq  # noqa: F401
    except ImportError:
        return False
    return True


def _split(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return schema or "public", name


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a local server process (the backend of a connection)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PgpqEncoder:
    """pgpq behind the interface ``copy_parquet`` expects of ``CopyEncoder``."""

    def __init__(self, columns: Sequence[Any], schema: pa.Schema):
        import pgpq
        from pgpq import encoders as pe
        from pgpq import schema as ps

        self.copy_columns = [c.name for c in columns]
        self.schema = pa.schema([schema.field(name) for name in self.copy_columns])
        chosen: dict[str, Any] = {}
        for column in columns:
            field = self.schema.field(column.name)
            t = field.type
            if column.type_name == "jsonb" and pa.types.is_string(getattr(t, "storage_type", t)):
                chosen[column.name] = pe.StringEncoderBuilder.new_with_output(field, ps.Jsonb())
            elif column.type_name == "int2" and t == pa.int8():
                chosen[column.name] = pe.Int8EncoderBuilder.new_with_output(field, ps.Int2())
            else:
                chosen[column.name] = pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(field)
        self._encoder = pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(self.schema, chosen)
        header = self._encoder.write_header()
        from conveyor.warehouse.postgres.binary_layout import SIGNATURE

        if header != SIGNATURE:  # copy_parquet writes the signature itself
            raise RuntimeError(f"pgpq writes an unexpected COPY header {header!r}")

    def encode(self, batch: pa.RecordBatch) -> list[pa.Buffer]:
        # pgpq buffers its output: a call may return nothing, finish() returns the rest
        out = self._encoder.write_batch(batch.select(self.copy_columns))
        return [pa.py_buffer(out)] if out else []

    def finish(self) -> bytes:
        """The bytes pgpq still holds, and the trailer."""
        return bytes(self._encoder.finish())


def copy_pgpq(con: Any, table: str, encoder: PgpqEncoder, paths: Sequence[Path], schema: pa.Schema) -> int:
    """``copy_parquet`` (the same reader thread, queue and COPY statement) ending with pgpq's ``finish()``."""
    from conveyor.warehouse.base import qualified, quote
    from conveyor.warehouse.postgres.binary_layout import SIGNATURE
    from conveyor.warehouse.postgres.copy import _Encoded

    columns = ", ".join(quote(c) for c in encoder.copy_columns)
    statement = f"COPY {qualified(table)} ({columns}) FROM STDIN (FORMAT binary)"
    with _Encoded(paths, encoder, schema) as chunks, con.cursor() as cursor:  # type: ignore[arg-type]
        with cursor.copy(statement) as copy:
            copy.write(SIGNATURE)
            for chunk in chunks:
                copy.write(chunk)
            copy.write(encoder.finish())
        return max(cursor.rowcount, 0)


def load_copy(tool: str, con: Any, table: str, paths: Sequence[Path], schema: pa.Schema) -> int:
    """conveyor or pgpq through Conveyor's COPY pipeline; commits."""
    from conveyor.warehouse.postgres.binary import CopyEncoder
    from conveyor.warehouse.postgres.catalog import table_columns
    from conveyor.warehouse.postgres.copy import copy_parquet

    columns = table_columns(con, table)
    if tool == "conveyor":
        rows = copy_parquet(con, table, CopyEncoder(columns, schema), paths, schema, freeze=False)
    else:
        rows = copy_pgpq(con, table, PgpqEncoder(columns, schema), paths, schema)
    con.commit()
    return rows


def batches(paths: Sequence[Path], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The Parquet files' batches cast to ``schema`` (what Conveyor's reader thread yields)."""
    from conveyor.warehouse.postgres.copy import _conform, batch_rows

    for path in paths:
        with pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) as parquet:
            for batch in parquet.iter_batches(batch_size=batch_rows(parquet.metadata), columns=schema.names):
                yield _conform(batch, schema)


def load_adbc(con: Any, table: str, paths: Sequence[Path], schema: pa.Schema) -> int:
    """ADBC bulk ingest (append) of the same batches; commits."""
    reader = pa.RecordBatchReader.from_batches(schema, batches(paths, schema))
    db_schema, name = _split(table)
    with con.cursor() as cursor:
        rows = cursor.adbc_ingest(name, reader, mode="append", db_schema_name=db_schema)
    con.commit()
    return int(rows)


def connect(tool: str, dsn: str) -> tuple[Any, int]:
    """A connection for ``tool`` and the PID of its server backend."""
    if tool == "adbc":
        import adbc_driver_postgresql.dbapi as adbc

        con = adbc.connect(dsn)
        with con.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = int(cursor.fetchone()[0])
        con.commit()
        return con, pid
    import psycopg

    con = psycopg.connect(dsn)
    pid = int(con.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    con.commit()
    return con, pid


def load(tool: str, con: Any, table: str, paths: Sequence[Path], schema: pa.Schema) -> int:
    if tool == "adbc":
        return load_adbc(con, table, paths, schema)
    return load_copy(tool, con, table, paths, schema)
