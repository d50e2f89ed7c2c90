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
