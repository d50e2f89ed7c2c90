"""Checks of values read from PostgreSQL that the lake's Arrow types cannot hold."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.errors import ExtractError
from conveyor.sources.verdict import ColumnRef

# the lowest value PostgreSQL stores (4714-11-24 BC); ADBC turns 'infinity', '-infinity'
# and timestamps past year 294246 into wrapped values far below it
_MIN_DAYS = -2_440_588
_MIN_MICROS = _MIN_DAYS * 86_400 * 1_000_000


def check_ndims(ndims: pa.Array, ref: ColumnRef) -> None:
    highest = pc.max(ndims).as_py()
    if highest is not None and highest > 1:
        raise ExtractError(
            f"{ref} holds a {highest}-dimensional array; only one-dimensional arrays map to a list.",
            hint="Declare the column as `type: text` in the design to read the array literal.",
        )


def check_infinite(arr: pa.Array, ref: ColumnRef) -> None:
    values = arr
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = pc.list_flatten(values)
    limit: int
    check: Callable[[pa.Array], pa.Array]
    if pa.types.is_date32(values.type):
        limit, check = _MIN_DAYS, lambda a: a.cast(pa.int32())
    elif pa.types.is_timestamp(values.type):
        limit, check = _MIN_MICROS, lambda a: a.cast(pa.int64())
    else:
        return
    lowest = pc.min(check(values)).as_py()
    if lowest is not None and lowest < limit:
        raise ExtractError(
            f"{ref} holds 'infinity', '-infinity' or a timestamp after year 294246, "
            "which the lake's date and microsecond timestamp types cannot store.",
            hint="Filter such rows out with the design's `condition` or declare the column `type: text`.",
        )
