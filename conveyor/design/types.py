"""The column type vocabulary of table designs.

A design names a column's type with a small, warehouse-neutral vocabulary (``bigint``,
``decimal(12,2)``, ``timestamptz``, ``text[]`` ...). Each type knows its exact Arrow type,
which is what the lake stores, and how each warehouse spells it. Sources map their native
types into this vocabulary; warehouses map it out again. Nothing in between guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


#: canonical names of the types without parameters (their Arrow types: :func:`_arrow_of`)
_SIMPLE = (
    "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint",
    "real", "double", "text", "date", "time", "timestamp", "timestamptz", "uuid", "json", "bytes",
)  # fmt: skip


@lru_cache(maxsize=1)
def _arrow_types() -> dict[str, pa.DataType]:
    """Canonical name -> Arrow type. pyarrow is imported here, on first use: most commands never need it."""
    import pyarrow as pa

    return {
        "boolean": pa.bool_(),
        "tinyint": pa.int8(),
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "utinyint": pa.uint8(),
        "usmallint": pa.uint16(),
        "uinteger": pa.uint32(),
        "ubigint": pa.uint64(),
        "real": pa.float32(),
        "double": pa.float64(),
        "text": pa.string(),
        "date": pa.date32(),
        "time": pa.time64("us"),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "uuid": pa.uuid(),
        "json": pa.json_(),
        "bytes": pa.binary(),
    }


_ALIASES = {
    "bool": "boolean",
    "int1": "tinyint",
    "int2": "smallint",
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float": "double",
    "float8": "double",
    "double precision": "double",
    "numeric": "decimal",
    "string": "text",
    "character varying": "varchar",
    "character": "char",
    "timestamp without time zone": "timestamp",
    "datetime": "timestamp",
    "timestamp with time zone": "timestamptz",
    "time without time zone": "time",
    "jsonb": "json",
    "bytea": "bytes",
    "blob": "bytes",
    "binary": "bytes",
    "varbinary": "bytes",
}

_PARAMETRIC = {"decimal", "varchar", "char"}
_TYPE_RE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*(\[\])?\s*$")

#: every name a design may use, for error messages and the JSON Schema
TYPE_NAMES = sorted({*_SIMPLE, *_PARAMETRIC, *_ALIASES})

# how each warehouse spells a canonical name when it differs from the name itself
_DIALECT_NAMES: dict[str, dict[str, str]] = {
    "duckdb": {"bytes": "blob", "text": "varchar"},
    "postgres": {
        "tinyint": "smallint",
        "utinyint": "smallint",
        "usmallint": "integer",
        "uinteger": "bigint",
        "ubigint": "numeric(20,0)",
        "double": "double precision",
        "bytes": "bytea",
        "json": "jsonb",
    },
}


@dataclass(frozen=True)
class SqlType:
    """A parsed design type: ``decimal(12,2)`` is ``SqlType("decimal", 12, 2)``."""

    name: str
    precision: int | None = None
    scale: int | None = None
    is_array: bool = False

    def __str__(self) -> str:
        text = self.name
        if self.precision is not None:
            text += f"({self.precision}" + (f",{self.scale}" if self.scale is not None else "") + ")"
        return text + ("[]" if self.is_array else "")

    @property
    def element(self) -> SqlType:
        """The element type of an array type (the type itself otherwise)."""
        return SqlType(self.name, self.precision, self.scale)

    @property
    def arrow(self) -> pa.DataType:
        """The exact Arrow type the lake stores for this type."""
        import pyarrow as pa

        if self.is_array:
            return pa.list_(self.element.arrow)
        if self.name == "decimal":
            precision = self.precision or 38
            scale = self.scale or 0
            return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        if self.name in ("varchar", "char"):
            return pa.string()
        return _arrow_types()[self.name]

    def render(self, dialect: str) -> str:
        """Spell the type for a warehouse dialect (``duckdb``, ``postgres``).

        Other warehouses spell types through their class (``Warehouse.render_type``, e.g.
        Redshift's); they never silently take another dialect's names.
        """
        if dialect not in _DIALECT_NAMES:
            raise ValueError(f'design types have no spelling for dialect "{dialect}" here; use its warehouse class')
        names = _DIALECT_NAMES[dialect]
        if self.is_array:
            return self.element.render(dialect) + "[]"
        if self.name == "char" and self.precision is not None:
            # loaded without its trailing blanks (docs/types.md): no warehouse pads it again
            return f"varchar({self.precision})"
        if self.name in _PARAMETRIC and self.precision is not None:
            return str(self)
        return names.get(self.name, self.name)


def parse_type(text: str) -> SqlType:
    """Parse a design type string; raises ``ValueError`` with a readable message."""
    match = _TYPE_RE.match(text.lower())
    if not match:
        if text.count("(") > text.count(")"):  # YAML's {type: decimal(38,2)} splits at the comma
            raise ValueError(
                f'"{text}" is not a column type: inside {{...}} a comma ends the value, so quote it, '
                f"e.g. {{type: 'decimal(38,2)'}}"
            )
        raise ValueError(f'"{text}" is not a column type')
    raw, precision, scale, array = match.groups()
    name = _ALIASES.get(raw.strip(), raw.strip())
    if name not in _SIMPLE and name not in _PARAMETRIC:
        import difflib

        near = difflib.get_close_matches(name, TYPE_NAMES, n=1, cutoff=0.6)
        also = f'; did you mean "{near[0]}"?' if near else "."
        known = ", ".join(sorted({*_SIMPLE, *(f"{t}(...)" for t in _PARAMETRIC)}))
        raise ValueError(f'"{raw.strip()}" is not a known column type{also} Design types: {known}.')
    if precision is not None and name not in _PARAMETRIC:
        raise ValueError(f'type "{name}" takes no parameters')
    if scale is not None and name != "decimal":
        raise ValueError(f'type "{name}" takes one parameter, not two')
    p = int(precision) if precision is not None else None
    s = int(scale) if scale is not None else None
    if name == "decimal":
        if p is None:
            raise ValueError('"decimal" needs a precision and scale, e.g. decimal(18,2)')
        if not 1 <= p <= 76 or (s or 0) > p:
            raise ValueError(f"decimal({p},{s or 0}) is out of range: precision 1..76 and scale <= precision")
        s = s or 0
    return SqlType(name, p, s, bool(array))


def from_arrow(dtype: pa.DataType) -> SqlType:
    """Map an Arrow type back to the design vocabulary (used by unload and bootstrap)."""
    import pyarrow as pa

    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = from_arrow(dtype.value_type)
        return SqlType(inner.name, inner.precision, inner.scale, True)
    if pa.types.is_decimal(dtype):
        return SqlType("decimal", dtype.precision, dtype.scale)
    if pa.types.is_large_string(dtype) or pa.types.is_string(dtype) or pa.types.is_string_view(dtype):
        return SqlType("text")
    if pa.types.is_large_binary(dtype) or pa.types.is_fixed_size_binary(dtype) or pa.types.is_binary_view(dtype):
        return SqlType("bytes")
    if pa.types.is_timestamp(dtype):
        return SqlType("timestamptz" if dtype.tz else "timestamp")
    if pa.types.is_time(dtype):
        return SqlType("time")
    if pa.types.is_date(dtype):
        return SqlType("date")
    for name, arrow in _arrow_types().items():
        if arrow == dtype:
            return SqlType(name)
    raise ValueError(f"Arrow type {dtype} has no design type")
