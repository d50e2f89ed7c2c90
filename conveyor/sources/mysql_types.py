"""MySQL and MariaDB column types: what each native type reads as (its design type), and the
conversions of values the driver hands over in another form.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.design.types import SqlType
from conveyor.errors import ExtractError
from conveyor.sources.base import ColumnInfo
from conveyor.sources.verdict import ColumnRef

_INT_TYPES = {
    "tinyint": "tinyint",
    "smallint": "smallint",
    "mediumint": "integer",
    "int": "integer",
    "bigint": "bigint",
}
_UNSIGNED = {"tinyint": "utinyint", "smallint": "usmallint", "integer": "uinteger", "bigint": "ubigint"}
_TEXT_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_BYTES_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"}
_SIMPLE = {
    "float": SqlType("real"),
    "double": SqlType("double"),
    "date": SqlType("date"),
    "datetime": SqlType("timestamp"),
    "timestamp": SqlType("timestamptz"),
    "time": SqlType("time"),
    "year": SqlType("smallint"),
    "json": SqlType("json"),
    "uuid": SqlType("uuid"),
}
_MICROS_PER_DAY = 86_400 * 1_000_000
_ZERO_DATE_TYPES = {"date", "datetime", "timestamp"}
SPATIAL_TYPES = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
}


@dataclass(frozen=True)
class MyColumn:
    """One column as information_schema describes it."""

    name: str
    data_type: str
    column_type: str
    not_null: bool
    precision: int | None
    scale: int | None
    is_json: bool = False
    comment: str | None = None

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()


def design_type(column: MyColumn) -> SqlType | None:
    """The exact design type of a MySQL/MariaDB column, or None when there is none."""
    data_type = column.data_type.lower()
    if data_type in _INT_TYPES:
        if data_type == "tinyint" and column.column_type.lower() == "tinyint(1)":
            return SqlType("boolean")
        name = _INT_TYPES[data_type]
        return SqlType(_UNSIGNED[name] if column.unsigned else name)
    if data_type in ("decimal", "numeric"):
        return SqlType("decimal", column.precision or 10, column.scale or 0)
    if data_type in _TEXT_TYPES:
        return SqlType("json") if column.is_json else SqlType("text")
    if data_type in _BYTES_TYPES:
        return SqlType("bytes")
    return _SIMPLE.get(data_type)


TEXT = SqlType("text")


def column_info(column: MyColumn, zero_dates: str = "null") -> ColumnInfo:
    """What ``describe`` says of one column: its exact design type, or its text form; a NOT NULL
    date may read as NULL when zero dates read as NULL (``zero_dates: null``)."""
    sql_type = design_type(column)
    text_form = None
    if sql_type is None:
        text_form = (
            "WKT (ST_AsText; coordinates exact, the SRID is not kept: type bytes keeps SRID + WKB)"
            if column.data_type.lower() in SPATIAL_TYPES
            else f"the server's text form of {column.column_type} (CAST AS CHAR)"
        )
    zero = zero_dates == "null" and column.not_null and column.data_type.lower() in _ZERO_DATE_TYPES
    return ColumnInfo(column.name, sql_type, column.column_type, column.not_null, column.comment, text_form, zero)


def time_from_micros(arr: pa.Array, ref: ColumnRef) -> pa.Array:
    """MySQL TIME (an interval from -838:59:59 to 838:59:59) as a time of day, checked."""
    arr = arr.cast(pa.int64())
    bad = pc.or_kleene(pc.less(arr, 0), pc.greater_equal(arr, _MICROS_PER_DAY))
    if pc.any(bad).as_py():
        micros = pc.filter(arr, bad)[0].as_py()
        sign = "-" if micros < 0 else ""
        seconds, fraction = divmod(abs(micros), 1_000_000)
        shown = f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}"
        raise ExtractError(
            f'{ref} holds the duration "{shown}", which is not a time of day (00:00:00 to 23:59:59.999999).',
            hint="Declare the column as `type: text` in the design to read it as written.",
        )
    return arr.cast(pa.time64("us"))


def date_from_number(arr: pa.Array, ref: ColumnRef) -> tuple[pa.Array, int, str]:
    """MySQL DATE sent as the number ``YYYYMMDD`` (``col + 0``) as ``date32``, exactly.

    Returns the dates with every zero date (a zero month or day, e.g. ``0000-00-00``) made
    NULL, how many zero dates there were, and the first of them as text. A date that does
    not exist (``2024-02-30``, stored under ``ALLOW_INVALID_DATES``) raises ``ExtractError``.
    """
    import numpy as np

    number = arr.cast(pa.int64())
    valid = number.is_valid().to_numpy(zero_copy_only=False)
    n = number.fill_null(19700101).to_numpy(zero_copy_only=False)
    year, month, day = n // 10_000, n // 100 % 100, n % 100
    zero = valid & ((month == 0) | (day == 0))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month, 0, 12)]
    month_days = month_days + ((month == 2) & leap)
    bad = valid & ~zero & ((month > 12) | (day > month_days) | (n < 0))
    if bad.any():
        shown = _date_text(int(n[bad.argmax()]))
        raise ExtractError(
            f'{ref} holds "{shown}", which is not a valid date or time.',
            hint="Declare the column as `type: text` in the design to read it as written.",
        )
    # days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's days_from_civil)
    shifted = year - (month <= 2)
    era = shifted // 400
    year_of_era = shifted - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = (era * 146_097 + day_of_era - 719_468).astype(np.int32)
    dates = pa.array(days, mask=~valid | zero).cast(pa.date32())
    zeros = int(zero.sum())
    return dates, zeros, _date_text(int(n[zero.argmax()])) if zeros else ""


def _date_text(number: int) -> str:
    return f"{number // 10_000:04d}-{number // 100 % 100:02d}-{number % 100:02d}"
