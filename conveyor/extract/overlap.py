"""Increments of a table without a primary key never overlap the lake.

An incremental read is inclusive (``cursor >= low``, ``low`` = previous high-water mark
minus the lag), so it re-reads the rows at the watermark: rows that arrived in the same
cursor tick after the previous extract are not lost. A table with a primary key merges the
re-read rows by key at load. A table without one cannot, so the re-read rows are taken out
of the increment before it is committed: the multiset difference

    increment - (rows of the lake's current chain with cursor >= low)

with whole-row, NULL-safe equality. For an append-only table (the only kind an increment
without a key can follow exactly) every chain row with ``cursor >= low`` is still upstream,
so the read holds each such row at least as often as the chain does, and the difference is
exactly the rows the chain lacks: chain + increment equals upstream for ``cursor >= low``.

Memory is bounded by the chain's rows with ``cursor >= low`` (the rows at the watermark
instant plus the lag window); rows of the new increment above the chain's largest cursor
are never looked at one by one.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from conveyor.design.types import parse_type
from conveyor.extract.incremental import decode
from conveyor.lake.manifest import Manifest, PartFile
from conveyor.lake.parts import rewrite_part
from conveyor.lake.store import Store

Row = tuple[Any, ...]


def drop_reread_rows(
    store: Store,
    key: str,
    parts: Sequence[PartFile],
    schema: pa.Schema,
    chain: Sequence[Manifest],
    cursor: str,
    low: Any,
    compression: str = "zstd",
) -> list[PartFile]:
    """Remove from the parts under ``key`` the rows the chain already holds with ``cursor >= low``.

    Parts with nothing to remove stay as they are; the others are rewritten in place.
    Returns the parts as they are now.
    """
    bound = pa.scalar(low, type=schema.field(cursor).type)
    held, top = _held_rows(chain, schema, cursor, bound)
    if not held:
        return list(parts)
    out = []
    for part in parts:
        part_key = f"{key}/{part.path}"
        with store.open_input(part_key) as handle:
            table = pq.read_table(handle)
        keep = _keep_mask(table, held, cursor, top)
        out.append(part if keep is None else rewrite_part(store, part_key, table.filter(keep), compression))
    return out


def _held_rows(chain: Sequence[Manifest], schema: pa.Schema, cursor: str, bound: pa.Scalar) -> tuple[Counter[Row], Any]:
    """The chain's rows with ``cursor >= bound`` (as a multiset) and their largest cursor."""
    held: Counter[Row] = Counter()
    top = None
    for manifest in chain:
        if _below(manifest, bound):
            continue
        dataset = manifest.dataset()
        if any(name not in dataset.schema.names for name in schema.names):
            continue  # written for other columns: a load of it fails before any row could match
        table = dataset.to_table(columns=schema.names, filter=ds.field(cursor) >= bound)
        try:
            table = table.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # other column types: no row can be equal
        held.update(_rows(table))
        biggest = pc.max(table.column(cursor)).as_py() if table.num_rows else None
        if biggest is not None and (top is None or biggest > top):
            top = biggest
    return held, top


def _below(manifest: Manifest, bound: pa.Scalar) -> bool:
    """Whether every row of an extract has a cursor below ``bound`` (its high-water mark says so)."""
    mark = manifest.watermark or {}
    if mark.get("value") is None:
        return False
    try:
        return bool(decode(mark["value"], parse_type(mark["type"])) < bound.as_py())
    except (KeyError, TypeError, ValueError):
        return False  # an unreadable mark proves nothing: look at the rows


def _keep_mask(table: pa.Table, held: Counter[Row], cursor: str, top: Any) -> pa.Array | None:
    """Which rows to keep (None: all); every row matched takes one copy out of ``held``."""
    column = table.column(cursor)
    candidates = pc.fill_null(pc.less_equal(column, pa.scalar(top, type=column.type)), False)
    indices = pc.indices_nonzero(candidates).to_pylist()
    if not indices:
        return None
    keep = [True] * table.num_rows
    dropped = False
    for index, row in zip(indices, _rows(table.take(indices)), strict=True):
        if held[row] > 0:
            held[row] -= 1
            keep[index] = False
            dropped = True
    return pa.array(keep) if dropped else None


def _rows(table: pa.Table) -> Iterable[Row]:
    columns = [[_canonical(v) for v in table.column(i).to_pylist()] for i in range(table.num_columns)]
    return zip(*columns, strict=True) if columns else iter(())


def _canonical(value: Any) -> Any:
    """A hashable value equal for equal upstream values: NULL equals NULL, NaN equals NaN, -0.0 is not 0.0."""
    if isinstance(value, float):
        return ("nan",) if math.isnan(value) else ("float", struct.pack("<d", value))
    if isinstance(value, list):
        return ("list", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _canonical(v)) for k, v in value.items()))
    return value
