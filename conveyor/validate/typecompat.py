"""Compare column types: what a warehouse or an upstream catalog reports against a design type.

Both comparisons ask one question: can every value of type ``given`` be stored exactly in
type ``wanted``? The answer is one of four verdicts:

* ``same``: the same type.
* ``widening``: a different type of the same kind that holds every value of ``given``
  (``integer`` into ``bigint``, ``decimal(10,2)`` into ``decimal(12,2)``, ``varchar(20)``
  into ``text``, ``date`` into ``timestamp``, ``real`` into ``double``).
* ``narrowing``: the same kind, but some values may not fit or may change (``bigint`` into
  ``integer``, ``decimal(18,4)`` into ``decimal(18,2)``, ``double`` into ``decimal``,
  ``timestamp`` into ``timestamptz``, ``text`` into ``json``).

An unconstrained ``numeric`` (what PostgreSQL's ``sum`` returns) is accepted into any
decimal: its precision is a property of each value, not of the column, so nothing can be
proven either way before the data is there.
* ``mismatch``: different kinds (``text`` into ``integer``, ``boolean`` into ``date``,
  an array into a scalar), which no load converts safely.

Kinds: numbers (integers, decimals, floats), strings (text, varchar, char; json counts as a
string with narrowing either way), date/time stamps (date, timestamp, timestamptz), time,
boolean, uuid, bytes, interval and json. Arrays compare element by element.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from conveyor.design.types import SqlType, parse_type
from conveyor.warehouse.dialect import dialect as dialect_of

Verdict = Literal["same", "widening", "narrowing", "mismatch"]

# integer widths in bits; unsigned ones in a second table
_SIGNED = {"tinyint": 8, "smallint": 16, "integer": 32, "bigint": 64, "hugeint": 128}
_UNSIGNED = {"utinyint": 8, "usmallint": 16, "uinteger": 32, "ubigint": 64, "uhugeint": 128}
# decimal digits every value of an integer type needs
_DIGITS = {(8, True): 3, (16, True): 5, (32, True): 10, (64, True): 19, (128, True): 39}
_DIGITS.update({(8, False): 3, (16, False): 5, (32, False): 10, (64, False): 20, (128, False): 39})
_FLOATS = {"real": 24, "double": 53}  # mantissa bits
_STRINGS = {"text", "varchar", "char"}
_STAMPS = {"date": 0, "timestamp": 1, "timestamptz": 2}

# native spellings (lower case) that are not design type names, per dialect family
_NATIVE = {
    "duckdb": {
        "float": "real",
        "float4": "real",
        "varchar": "text",
        "string": "text",
        "blob": "bytes",
        "bytea": "bytes",
        "timestamp with time zone": "timestamptz",
        "timestamp_s": "timestamp",
        "timestamp_ms": "timestamp",
        "timestamp_ns": "timestamp",
        "timestamp_us": "timestamp",
        "datetime": "timestamp",
        "int128": "hugeint",
        "hugeint": "hugeint",
        "uhugeint": "uhugeint",
        "signed": "integer",
    },
    "postgres": {
        "bpchar": "char",
        "character": "char",
        "timetz": "time",
        "time with time zone": "time",
        "serial": "integer",
        "bigserial": "bigint",
        "smallserial": "smallint",
        "name": "text",
        "citext": "text",
    },
}
_EXTRA = {"hugeint", "uhugeint"}
_PARAMS = re.compile(r"^(?P<name>[a-z_][a-z0-9_ ]*?)\s*(?:\((?P<args>[^)]*)\))?\s*(?P<array>(?:\[\d*\])*)$")


@lru_cache(maxsize=4096)  # a project repeats a few types many times; SqlType is immutable
def native_type(text: str, dialect: str) -> SqlType | None:
    """Read a type as a warehouse (or catalog) spells it; None when it has no design equivalent.

    Args:
        text: e.g. ``DECIMAL(18,2)``, ``TIMESTAMP WITH TIME ZONE``, ``int8``, ``numeric``, ``INTEGER[]``.
        dialect: ``duckdb`` or ``postgres`` (``redshift`` reads as ``postgres``).

    Returns:
        The design type; an unconstrained ``numeric`` comes back as ``decimal`` with no precision.
    """
    match = _PARAMS.match(text.strip().lower())
    if not match:
        return None
    name, args, array = match.group("name").strip(), match.group("args"), bool(match.group("array"))
    name = _NATIVE.get(dialect_of(dialect).NATIVE_TYPES, {}).get(name, name)
    if name in _EXTRA:
        return SqlType(name, is_array=array)
    if name in ("numeric", "decimal") and not args:
        return SqlType("decimal", is_array=array)
    if name in ("varchar", "char", "character varying", "text") and args is not None and not args.strip():
        args = None
    spelled = name + (f"({args})" if args else "")
    try:
        parsed = parse_type(spelled)
    except ValueError:
        try:
            parsed = parse_type(name)  # e.g. timestamp(3): precision the vocabulary does not keep
        except ValueError:
            return None
    return SqlType(parsed.name, parsed.precision, parsed.scale, array)


def compare(given: SqlType, wanted: SqlType) -> Verdict:
    """Whether every value of ``given`` fits ``wanted`` exactly (see the module docstring)."""
    if given == wanted:
        return "same"
    if given.is_array != wanted.is_array:
        return "mismatch"
    if given.is_array:
        return compare(given.element, wanted.element)
    a, b = given.name, wanted.name
    if a == b and a not in ("decimal", "varchar", "char"):
        return "same"
    kind_a, kind_b = _kind(a), _kind(b)
    if kind_a != kind_b:
        if {kind_a, kind_b} == {"string", "json"}:
            return "narrowing"
        return "mismatch"
    if kind_a == "number":
        return _numbers(given, wanted)
    if kind_a == "string":
        return _strings(given, wanted)
    if kind_a == "stamp":
        if (a, b) == ("date", "timestamp"):
            return "widening"
        return "narrowing"
    return "mismatch"


def _kind(name: str) -> str:
    if name in _SIGNED or name in _UNSIGNED or name in _FLOATS or name == "decimal":
        return "number"
    if name in _STRINGS:
        return "string"
    if name in _STAMPS:
        return "stamp"
    return name


def _int(name: str) -> tuple[int, bool] | None:
    """(bits, signed) of an integer type."""
    if name in _SIGNED:
        return _SIGNED[name], True
    if name in _UNSIGNED:
        return _UNSIGNED[name], False
    return None


def _numbers(given: SqlType, wanted: SqlType) -> Verdict:
    a, b = _int(given.name), _int(wanted.name)
    if a and b:
        (wa, sa), (wb, sb) = a, b
        # the same signedness needs as many bits; unsigned fits only a wider signed type
        fits = wb >= wa if sa == sb else sb and wb > wa
        return "widening" if fits else "narrowing"
    if a and wanted.name == "decimal":
        if wanted.precision is None:
            return "widening"
        return "widening" if wanted.precision - (wanted.scale or 0) >= _DIGITS[a] else "narrowing"
    if a and wanted.name in _FLOATS:
        return "widening" if a[0] < _FLOATS[wanted.name] else "narrowing"
    if given.name == "decimal" and wanted.name == "decimal":
        if given.precision is None:
            return "widening"  # an unconstrained numeric (PostgreSQL's sum): its precision is known only per value
        if wanted.precision is None:
            return "widening"
        scale_a, scale_b = given.scale or 0, wanted.scale or 0
        whole_a, whole_b = given.precision - scale_a, wanted.precision - scale_b
        return "widening" if scale_b >= scale_a and whole_b >= whole_a else "narrowing"
    if given.name == "decimal" and b:
        if given.precision is not None and not given.scale and given.precision < _DIGITS[b]:
            return "widening"
        return "narrowing"
    if given.name in _FLOATS and wanted.name in _FLOATS:
        return "widening" if _FLOATS[wanted.name] >= _FLOATS[given.name] else "narrowing"
    return "narrowing"  # float <-> decimal or float into an integer: inexact


def _strings(given: SqlType, wanted: SqlType) -> Verdict:
    if wanted.name == "text":
        return "widening"
    if given.name == "text" or given.precision is None:
        return "narrowing" if wanted.precision is not None else "widening"
    if wanted.precision is None:
        return "widening"
    return "widening" if wanted.precision >= given.precision and wanted.name == given.name else "narrowing"
