"""Splitting one table's read into partitions that cover every row exactly once.

Cut points come from the split column's min and max (even ranges, for integer, date and
timestamp keys) or from quantiles (for text and uuid keys, or any key a source cannot
range). The filters are ``col < c1 OR col IS NULL``, ``c1 <= col < c2`` ... ``col >= ck``:
together they cover every value, NULLs included, and never a row twice. A PostgreSQL table
without a split key is split by physical ``ctid`` ranges instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from conveyor.design.types import SqlType
from conveyor.errors import UserError
from conveyor.sources.base import ReadRequest, Source

#: design types a split key may have: they order exactly and split into ranges
SPLIT_TYPES = frozenset(
    {
        *("tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint"),
        *("date", "timestamp", "timestamptz", "uuid", "text", "varchar", "char"),
    }
)


def check_split_type(sql_type: SqlType, relation: str, column: str) -> None:
    """Refuse a split key whose type cannot be split into ranges (validate reports the same)."""
    if sql_type.is_array or sql_type.name not in SPLIT_TYPES:
        raise UserError(
            f'extract.split_by of "{relation}" is "{column}" of type {sql_type}, which cannot be split into ranges.',
            hint="Split by an integer, date, timestamp, uuid or text column, or set extract.partitions only.",
        )


#: rows per partition when the count is automatic
ROWS_PER_PARTITION = 2_000_000
MAX_AUTO_PARTITIONS = 16
_RANGEABLE = {"tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint"}
_RANGEABLE |= {"date", "timestamp", "timestamptz"}


def auto_count(row_estimate: int | None, workers: int) -> int:
    """Partitions for a table of ``row_estimate`` rows: one per 2M rows, at most 16."""
    if not row_estimate or row_estimate <= ROWS_PER_PARTITION:
        return 1
    return max(1, min(MAX_AUTO_PARTITIONS, max(workers, 1) * 2, math.ceil(row_estimate / ROWS_PER_PARTITION)))


def range_filters(
    column_sql: str, cuts: Sequence[object], placeholder: str = "%s"
) -> list[tuple[str, tuple[object, ...]]]:
    """WHERE fragments splitting a column at sorted, distinct ``cuts``; NULLs go to the first."""
    if not cuts:
        return [("1=1", ())]
    p = placeholder
    filters: list[tuple[str, tuple[object, ...]]] = [(f"({column_sql} < {p} OR {column_sql} IS NULL)", (cuts[0],))]
    for low, high in itertools.pairwise(cuts):
        filters.append((f"({column_sql} >= {p} AND {column_sql} < {p})", (low, high)))
    filters.append((f"{column_sql} >= {p}", (cuts[-1],)))
    return filters


def distinct_sorted(values: Iterable[object]) -> list[object]:
    """Drop NULLs and duplicates from already-sorted cut points."""
    out: list[object] = []
    for value in values:
        if value is not None and (not out or value != out[-1]):
            out.append(value)
    return out


def even_cuts(low: Any, high: Any, count: int) -> list[Any]:
    """``count - 1`` evenly spaced cut points between ``low`` and ``high`` (ints, dates, datetimes)."""
    if low is None or high is None or count < 2 or not high > low:
        return []
    span = high - low
    if isinstance(low, int) and not isinstance(low, bool):
        return distinct_sorted(low + span * i // count for i in range(1, count))
    if isinstance(low, datetime | date):
        return distinct_sorted(low + span * i / count for i in range(1, count))
    return []


def split(
    source: Source, request: ReadRequest, column: str | None, sql_type: SqlType | None, count: int
) -> list[ReadRequest]:
    """Partition a read into ``count`` requests (fewer when the data has fewer distinct keys)."""
    if count < 2:
        return [request]
    if column is None:
        if not source.SUPPORTS_CTID:
            return [request]
        fragments: list[tuple[str, tuple[object, ...]]] = [
            (f, ())
            for f in source.ctid_ranges(  # type: ignore[attr-defined]
                request.schema, request.table, count
            )
        ]
    else:
        cuts = _cuts(source, request, column, sql_type, count)
        fragments = range_filters(source.quote(column), cuts, source.PLACEHOLDER)
    return [_narrow(request, where, params) for where, params in fragments]


def _cuts(source: Source, request: ReadRequest, column: str, sql_type: SqlType | None, count: int) -> list[Any]:
    if sql_type is not None and sql_type.name in _RANGEABLE:
        low, high = source.min_max(request.schema, request.table, column, request.where, request.params)
        cuts = even_cuts(low, high, count)
        if cuts:
            return cuts
    return source.quantiles(request.schema, request.table, column, count)


def _narrow(request: ReadRequest, where: str, params: tuple[object, ...]) -> ReadRequest:
    combined = f"({request.where}) AND ({where})" if request.where else where
    return replace(request, where=combined, params=(*request.params, *params))
