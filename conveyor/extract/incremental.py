"""Incremental extraction: typed watermarks that never lose precision.

A watermark is stored as JSON text, ``{"cursor": "updated_at", "type": "timestamptz",
"value": "2026-01-01T00:00:00.123456+00:00"}``. The value is the exact text form of the
cursor's type: integers as JSON integers (any size), decimals as strings, timestamps as
ISO-8601 with microseconds (and offset for ``timestamptz``). It is turned back into the
Python value of that type before it is bound as a query parameter, so nothing passes
through a float.

The high-water mark is the largest cursor value among the rows actually read. It is
recorded in the manifest and, only after the manifest is committed, in the tracking store.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from conveyor.design.types import SqlType, parse_type
from conveyor.errors import UserError

if TYPE_CHECKING:
    import pyarrow as pa

_NUMERIC = {"tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint", "decimal"}
_TEMPORAL = {"date", "timestamp", "timestamptz"}
_LAG = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(microsecond|millisecond|second|minute|hour|day|week)s?\s*$", re.I)


def check_cursor_type(sql_type: SqlType, relation: str, cursor: str) -> None:
    """A cursor must be ordered and exact: integers, decimals, dates, timestamps or text."""
    if sql_type.is_array or sql_type.name not in (_NUMERIC | _TEMPORAL | {"text", "varchar", "char"}):
        raise UserError(
            f'the incremental cursor "{cursor}" of "{relation}" has type {sql_type}, which cannot order rows exactly.',
            hint="Use an integer, decimal, date, timestamp or text column.",
        )


def encode(value: Any, sql_type: SqlType) -> Any:
    """The JSON form of a cursor value."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int):
        return value
    return str(value)


def decode(value: Any, sql_type: SqlType) -> Any:
    """The Python value of a cursor's JSON form."""
    name = sql_type.name
    if value is None:
        return None
    if name == "decimal":
        return Decimal(value)
    if name in _NUMERIC:
        return int(value)
    if name == "date":
        return date.fromisoformat(value)
    if name in ("timestamp", "timestamptz"):
        return datetime.fromisoformat(value)
    return str(value)


def parse_lag(lag: str | int | None, sql_type: SqlType, relation: str) -> Any:
    """The overlap to re-read: a number for numeric cursors, a timedelta for temporal ones."""
    if lag is None:
        return None
    if sql_type.name in _TEMPORAL:
        match = _LAG.match(str(lag))
        if not match:
            raise UserError(
                f'the incremental lag "{lag}" of "{relation}" is not a duration.',
                hint='Write it like "90 seconds", "15 minutes", "1 hour" or "2 days".',
            )
        amount, unit = float(match.group(1)), match.group(2).lower()
        return timedelta(**{unit + "s": amount})
    if sql_type.name in _NUMERIC and isinstance(lag, int | float | str) and str(lag).replace(".", "", 1).isdigit():
        return Decimal(str(lag)) if sql_type.name == "decimal" else int(lag)
    raise UserError(f'the incremental lag "{lag}" of "{relation}" does not fit a {sql_type} cursor.')


def lower_bound(previous: dict[str, Any] | None, sql_type: SqlType, lag: Any) -> Any:
    """The inclusive lower bound of the next read: the previous high-water mark minus the lag."""
    if not previous or previous.get("value") is None:
        return None
    value = decode(previous["value"], sql_type)
    return value - lag if lag else value


def parse_watermark(text: str | None) -> dict[str, Any] | None:
    """Parse a stored watermark; None when there is none."""
    return json.loads(text) if text else None


class HighWater:
    """Tracks the largest cursor value seen in the batches written so far."""

    def __init__(self, cursor: str, sql_type: SqlType):
        self.cursor = cursor
        self.sql_type = sql_type
        self.value: Any = None

    def update(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        column = batch.column(batch.schema.get_field_index(self.cursor))
        if column.null_count == len(column):
            return
        top = pc.max(column).as_py()
        if top is not None and (self.value is None or top > self.value):
            self.value = top

    def watermark(self, low: Any) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "type": str(self.sql_type),
            "low": encode(low, self.sql_type),
            "value": encode(self.value, self.sql_type),
        }


def cursor_type(columns: tuple[tuple[str, str], ...], cursor: str, relation: str) -> SqlType:
    """The design type of the cursor column; it must be one of the extracted columns."""
    for name, type_text in columns:
        if name == cursor:
            return parse_type(type_text)
    raise UserError(
        f'the incremental cursor "{cursor}" of "{relation}" is not one of its (unskipped) columns.',
        hint="Name an existing column in extract.incremental.cursor.",
    )
