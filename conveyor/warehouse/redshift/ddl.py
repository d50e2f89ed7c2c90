"""Amazon Redshift DDL: type spelling, physical layout attributes, CREATE TABLE and CTAS.

No Redshift cluster is reachable from where Conveyor is developed, so this module
generates SQL and checks it (golden tests, and a parse with sqlglot's redshift dialect)
but has never run it. :class:`RedshiftWarehouse` overrides every public method of the
PostgreSQL engine it derives from: DDL and type spelling are Redshift's, and what would
run against the cluster (load, update, upgrade, unload) is refused up front with a
``UserError`` saying what is missing, because Redshift loads and unloads through S3 and
the lake is a local folder. Nothing silently runs PostgreSQL code on Redshift. The
decision for each method is a table in docs/warehouses.md.

Physical layout comes from a design's ``attributes``:

``distribution``
    ``even``, ``key``, ``all`` or ``auto`` (DISTSTYLE). ``key`` needs ``distkey``.
``distkey``
    The distribution column; implies ``distribution: key``.
``sortkey``
    A column, a list of columns, or ``auto``.
``sortkey_style``
    ``compound`` (the default) or ``interleaved`` (at most 8 columns).
``encode``
    The compression of every column (``zstd``, ``az64`` ...) or ``auto`` (table ENCODE AUTO).
``encode.<column>``
    The compression of one column; wins over ``encode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.design.models import TableDesign
from conveyor.design.types import SqlType
from conveyor.errors import ConfigError, did_you_mean
from conveyor.warehouse.base import qualified, quote

DISTRIBUTIONS = ("even", "key", "all", "auto")
SORTKEY_STYLES = ("compound", "interleaved")
ENCODINGS = (
    "raw",
    "az64",
    "bytedict",
    "delta",
    "delta32k",
    "lzo",
    "mostly8",
    "mostly16",
    "mostly32",
    "runlength",
    "text255",
    "text32k",
    "zstd",
)
ATTRIBUTES = ("distribution", "distkey", "sortkey", "sortkey_style", "encode")
"""Known attribute keys (plus ``encode.<column>``)."""
VARCHAR_MAX = 65_535
VARBYTE_MAX = 1_024_000
MAX_INTERLEAVED = 8
MAX_COMPOUND = 400
MAX_DECIMAL_DIGITS = 38
"""Redshift's largest DECIMAL precision."""
# design type -> Redshift type (parametric ones are handled in redshift_type)
TYPE_MAPPING = {
    "boolean": "BOOLEAN",
    "tinyint": "SMALLINT",
    "utinyint": "SMALLINT",
    "smallint": "SMALLINT",
    "usmallint": "INTEGER",
    "integer": "INTEGER",
    "uinteger": "BIGINT",
    "bigint": "BIGINT",
    "ubigint": "DECIMAL(20,0)",
    "real": "REAL",
    "double": "DOUBLE PRECISION",
    "text": f"VARCHAR({VARCHAR_MAX})",
    "json": f"VARCHAR({VARCHAR_MAX})",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "uuid": "VARBYTE(16)",
    "bytes": f"VARBYTE({VARBYTE_MAX})",
}
# encodings that only some types take (the others take any type but SUPER's restrictions)
_INTEGERS = {"SMALLINT", "INTEGER", "BIGINT"}
_ENCODING_TYPES: dict[str, set[str]] = {
    "az64": _INTEGERS | {"DECIMAL", "DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ"},
    "delta": _INTEGERS | {"DECIMAL", "DATE", "TIMESTAMP", "TIMESTAMPTZ"},
    "delta32k": {"INTEGER", "BIGINT", "DECIMAL", "DATE", "TIMESTAMP", "TIMESTAMPTZ"},
    "mostly8": _INTEGERS | {"DECIMAL"},
    "mostly16": {"INTEGER", "BIGINT", "DECIMAL"},
    "mostly32": {"BIGINT", "DECIMAL"},
    "text255": {"VARCHAR"},
    "text32k": {"VARCHAR"},
    "bytedict": _INTEGERS
    | {"DECIMAL", "REAL", "DOUBLE PRECISION", "CHAR", "VARCHAR", "DATE", "TIMESTAMP", "TIMESTAMPTZ"},
}
_ANY_TYPE_ENCODINGS = {"raw", "zstd", "lzo", "runlength"}


def redshift_type(sql_type: SqlType, *, column: str = "", design: str = "") -> str:
    """How Redshift spells a design type (exactly: nothing is truncated or rounded).

    ``text`` and ``json`` become VARCHAR(65535), the longest Redshift has (its TEXT is
    VARCHAR(256)); ``varchar(n)`` counts characters but Redshift counts bytes, so it becomes
    VARCHAR(4n); ``uuid`` becomes its 16 bytes (VARBYTE(16)), as the lake stores it;
    arrays become SUPER.
    """
    if sql_type.is_array:
        redshift_type(sql_type.element, column=column, design=design)  # its elements must fit Redshift too
        return "SUPER"
    name = sql_type.name
    if name == "decimal":
        precision, scale = sql_type.precision or MAX_DECIMAL_DIGITS, sql_type.scale or 0
        if precision > MAX_DECIMAL_DIGITS:
            raise ConfigError(
                f'design "{design}": column "{column}" is decimal({precision},{scale}) but Redshift decimals '
                f"have at most {MAX_DECIMAL_DIGITS} digits.",
                hint="Narrow the column's type in the design, or leave this relation out of the Redshift environment.",
            )
        return f"DECIMAL({precision},{scale})"
    if name in ("varchar", "char"):
        length = sql_type.precision
        return f"VARCHAR({min(4 * length, VARCHAR_MAX)})" if length else f"VARCHAR({VARCHAR_MAX})"
    if name not in TYPE_MAPPING:
        raise ConfigError(f'design "{design}": column "{column}" has type {sql_type}, which Redshift cannot load.')
    return TYPE_MAPPING[name]


def _base(redshift: str) -> str:
    """DECIMAL(12,2) -> DECIMAL."""
    return redshift.split("(")[0]


@dataclass(frozen=True)
class RedshiftAttributes:
    """A design's validated physical attributes."""

    distribution: str | None = None
    distkey: str | None = None
    sortkey: tuple[str, ...] = ()
    sortkey_auto: bool = False
    sortkey_style: str = "compound"
    encode_all: str | None = None
    encode: dict[str, str] = field(default_factory=dict)

    def table_clauses(self) -> list[str]:
        """DISTSTYLE / DISTKEY / SORTKEY / ENCODE AUTO clauses, one per line."""
        clauses = []
        if self.distribution:
            clauses.append(f"DISTSTYLE {self.distribution.upper()}")
        if self.distkey:
            clauses.append(f"DISTKEY ({quote(self.distkey)})")
        if self.sortkey_auto:
            clauses.append("SORTKEY AUTO")
        elif self.sortkey:
            clauses.append(f"{self.sortkey_style.upper()} SORTKEY ({', '.join(quote(c) for c in self.sortkey)})")
        if self.encode_all == "auto":
            clauses.append("ENCODE AUTO")
        return clauses


def redshift_attributes(design: TableDesign) -> RedshiftAttributes:
    """Validate and read a design's Redshift attributes.

    Raises:
        ConfigError: naming the design and the attribute key that is wrong.
    """
    attributes: Mapping[str, Any] = design.attributes
    columns = {c.name: c for c in design.loaded_columns}
    typed = {name: redshift_type(c.sql_type, column=name, design=design.name) for name, c in columns.items() if c.type}

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f'design "{design.name}": attribute "{key}": {problem}')

    def text(key: str) -> str:
        value = attributes[key]
        if not isinstance(value, str):
            raise fail(key, f"expected one word, got {value!r}.")
        return value.strip()

    def column(key: str, name: str) -> str:
        if columns and name not in columns:
            raise fail(key, f'"{name}" is not a column of the design.' + did_you_mean(name, columns))
        if typed.get(name) == "SUPER":
            raise fail(key, f'column "{name}" is SUPER, which cannot be a distribution or sort key.')
        return name

    encode_map: dict[str, str] = {}
    for key in attributes:
        if key.startswith("encode."):
            encode_map[key.removeprefix("encode.")] = key
        elif key not in ATTRIBUTES:
            raise fail(key, "unknown Redshift attribute." + did_you_mean(key, [*ATTRIBUTES, "encode.<column>"]))

    distribution = text("distribution").lower() if "distribution" in attributes else None
    if distribution is not None and distribution not in DISTRIBUTIONS:
        raise fail("distribution", f'"{distribution}" is not one of {", ".join(DISTRIBUTIONS)}.')
    distkey = column("distkey", text("distkey")) if "distkey" in attributes else None
    if distkey and distribution not in (None, "key"):
        raise fail("distkey", f"a distribution key needs distribution: key, not {distribution}.")
    if distkey and distribution is None:
        distribution = "key"
    if distribution == "key" and not distkey:
        raise fail("distribution", "distribution: key needs a distkey column.")

    sortkey: tuple[str, ...] = ()
    sortkey_auto = False
    if "sortkey" in attributes:
        raw = attributes["sortkey"]
        names = [raw] if isinstance(raw, str) else list(raw)
        if names == ["auto"] or names == ["AUTO"]:
            sortkey_auto = True
        elif not names or not all(isinstance(n, str) and n for n in names):
            raise fail("sortkey", f"expected a column or a list of columns, got {raw!r}.")
        else:
            sortkey = tuple(column("sortkey", n) for n in names)
            if len(set(sortkey)) != len(sortkey):
                raise fail("sortkey", "a column appears twice.")
    style = text("sortkey_style").lower() if "sortkey_style" in attributes else "compound"
    if style not in SORTKEY_STYLES:
        raise fail("sortkey_style", f'"{style}" is not one of {", ".join(SORTKEY_STYLES)}.')
    if "sortkey_style" in attributes and not sortkey:
        raise fail("sortkey_style", "it needs a sortkey list of columns.")
    limit = MAX_INTERLEAVED if style == "interleaved" else MAX_COMPOUND
    if len(sortkey) > limit:
        raise fail("sortkey", f"a {style} sort key has at most {limit} columns, not {len(sortkey)}.")

    encode_all = None
    if "encode" in attributes:
        raw = attributes["encode"]
        if isinstance(raw, Mapping):  # a nested map of column -> encoding, where the model allows it
            encode_map.update({name: f"encode.{name}" for name in raw})
        else:
            encode_all = text("encode").lower()
            if encode_all != "auto" and encode_all not in ENCODINGS:
                raise fail(
                    "encode", f'"{encode_all}" is not a Redshift encoding.' + did_you_mean(encode_all, ENCODINGS)
                )
    encode: dict[str, str] = {}
    if encode_all and encode_all != "auto":
        encode = {name: encode_all for name, redshift in typed.items() if _encodable(encode_all, redshift)}
    raw_encode = attributes.get("encode")
    nested: Mapping[str, Any] = raw_encode if isinstance(raw_encode, Mapping) else {}
    for name, key in encode_map.items():
        value = nested[name] if name in nested else attributes[key]
        if not isinstance(value, str):
            raise fail(key, f"expected one encoding, got {value!r}.")
        encoding = value.strip().lower()
        if name not in columns:
            raise fail(key, f'"{name}" is not a column of the design.' + did_you_mean(name, columns))
        if encoding not in ENCODINGS:
            raise fail(key, f'"{encoding}" is not a Redshift encoding.' + did_you_mean(encoding, ENCODINGS))
        if name in typed and not _encodable(encoding, typed[name]):
            raise fail(key, f"{encoding} cannot compress a {typed[name]} column.")
        encode[name] = encoding
    if encode and encode_all == "auto":
        raise fail("encode", "encode: auto leaves every column to Redshift; remove the encode.<column> keys.")
    return RedshiftAttributes(distribution, distkey, sortkey, sortkey_auto, style, encode_all, encode)


def _encodable(encoding: str, redshift: str) -> bool:
    base = _base(redshift)
    if base == "SUPER":
        return encoding in ("raw", "zstd")
    if base == "VARBYTE":
        return encoding in ("raw", "zstd", "lzo")
    if encoding in _ANY_TYPE_ENCODINGS:
        return not (encoding == "lzo" and base in ("BOOLEAN", "REAL", "DOUBLE PRECISION"))
    return base in _ENCODING_TYPES.get(encoding, set())


def redshift_ddl(design: TableDesign, *, name: str | None = None, keys: bool = False) -> str:
    """CREATE TABLE for a typed design, with ENCODE per column and the table's DISTSTYLE/SORTKEY.

    ``keys`` declares the primary key and unique keys. Redshift does not enforce them; its
    planner trusts them (and may return wrong results when they do not hold), which is safe
    because Conveyor checks every key before publishing.

    Raises:
        ConfigError: an attribute is wrong, a column has no type, or a type Redshift lacks.
    """
    attributes = redshift_attributes(design)
    lines = []
    for column in design.loaded_columns:
        if not column.type:
            raise ConfigError(f'design "{design.name}": column "{column.name}" needs a type for Redshift DDL.')
        line = f"{quote(column.name)} {redshift_type(column.sql_type, column=column.name, design=design.name)}"
        if column.not_null or column.name in design.constraints.primary_key:
            line += " NOT NULL"
        if column.name in attributes.encode:
            line += f" ENCODE {attributes.encode[column.name]}"
        lines.append(line)
    if not lines:
        raise ConfigError(f'design "{design.name}" has no columns to create a Redshift table with.')
    if keys and design.constraints.primary_key:
        lines.append("PRIMARY KEY (" + ", ".join(quote(c) for c in design.constraints.primary_key) + ")")
    if keys:
        lines.extend("UNIQUE (" + ", ".join(quote(c) for c in cols) + ")" for cols in design.constraints.unique)
    body = ",\n    ".join(lines)
    tail = "".join("\n" + clause for clause in attributes.table_clauses())
    return f"CREATE TABLE {qualified(name or design.name)} (\n    {body}\n){tail}"


def redshift_ctas(design: TableDesign, select: str, *, name: str | None = None) -> str:
    """CREATE TABLE ... AS for a design without column types (table attributes only).

    Raises:
        ConfigError: the design sets a column encoding (CTAS cannot; give the columns types).
    """
    attributes = redshift_attributes(design)
    if attributes.encode or attributes.encode_all:
        key = "encode" if attributes.encode_all else "encode." + next(iter(attributes.encode))
        raise ConfigError(
            f'design "{design.name}": attribute "{key}": CREATE TABLE AS cannot set column encodings; '
            "declare the columns with their types to get a CREATE TABLE with ENCODE."
        )
    tail = "".join("\n" + clause for clause in attributes.table_clauses())
    return f"CREATE TABLE {qualified(name or design.name)}{tail}\nAS {select.strip().rstrip(';')}"
