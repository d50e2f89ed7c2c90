"""What can be read as what, and the errors of reads that cannot: no pyarrow needed.

The one table of conversions (:func:`read_verdict`) is shared by the extract, which refuses
a ``mismatch`` before reading, and ``conveyor validate``, which reports the same verdict; the
conversions themselves live in :mod:`conveyor.sources.typemap`. Kept apart from them so that
validate and other commands that never read a row do not import pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from conveyor.design.types import SqlType
from conveyor.errors import ExtractError

#: hint appended to every "this column cannot be read as that type" error
OVERRIDE_HINT = (
    "Declare the column's type in the design (e.g. `type: text`) to read it another way, or mark it `skipped: true`."
)


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ColumnRef:
    """Where a value comes from, for error messages."""

    source: str
    schema: str
    table: str
    column: str
    native_type: str

    def __str__(self) -> str:
        where = f'table "{self.schema}.{self.table}" in source "{self.source}"'
        return f'column "{self.column}" ({self.native_type}) of {where}'


def unmapped_type_error(ref: ColumnRef) -> ExtractError:
    """The error for a native type that has no exact design type."""
    return ExtractError(f'{ref} has type "{ref.native_type}", which has no exact design type.', hint=OVERRIDE_HINT)


def unsupported_override_error(ref: ColumnRef, target: SqlType) -> ExtractError:
    """The error for a design type a native column cannot be read as without loss."""
    return ExtractError(
        f'{ref} cannot be read as design type "{target}" without changing its values.',
        hint="Use the type the source reflects, or `text`, or mark the column `skipped: true`.",
    )


def value_error(ref: ColumnRef, target: SqlType | str, value: object, why: str) -> ExtractError:
    """The error for one value that does not fit the design type exactly."""
    shown = repr(value) if not isinstance(value, str) else f'"{value}"'
    return ExtractError(
        f"{ref} holds the value {shown}, which {why} (design type {target}).",
        hint="Declare a wider type in the design (e.g. `type: decimal(30,12)`) or `type: text`.",
    )


def missing_table_error(source: str, schema: str, table: str, known: Iterable[str]) -> ExtractError:
    """The error for a table the source does not have."""
    from conveyor.errors import did_you_mean

    hint = did_you_mean(f"{schema}.{table}", known).strip() or None
    return ExtractError(f'table "{schema}.{table}" does not exist in source "{source}".', hint=hint)


def missing_column_error(source: str, schema: str, table: str, column: str, known: Iterable[str]) -> ExtractError:
    """The error for a requested column the table does not have."""
    from conveyor.errors import did_you_mean

    hint = did_you_mean(column, known).strip() or None
    return ExtractError(
        f'column "{column}" does not exist in table "{schema}.{table}" of source "{source}".', hint=hint
    )


# --------------------------------------------------------------------------- what can be read as what

Verdict = Literal["same", "widening", "narrowing", "mismatch"]
"""Whether a column can be read as a design type: ``same`` type; ``widening``, every value
fits; ``narrowing``, each value is checked and the first that does not fit fails the read;
``mismatch``, the read refuses the column before reading any row."""

_SIGNED = {"tinyint": 8, "smallint": 16, "integer": 32, "bigint": 64}
_UNSIGNED = {"utinyint": 8, "usmallint": 16, "uinteger": 32, "ubigint": 64}
# decimal digits the widest value of an integer type has
_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}
_UDIGITS = {8: 3, 16: 5, 32: 10, 64: 20}
_FLOAT_BITS = {"real": 32, "double": 64}
_MANTISSA = {"real": 24, "double": 53}
STRING_TYPES = frozenset({"text", "varchar", "char"})


def _int(name: str) -> tuple[int, bool] | None:
    """(bits, signed) of an integer design type."""
    if name in _SIGNED:
        return _SIGNED[name], True
    if name in _UNSIGNED:
        return _UNSIGNED[name], False
    return None


def _digits(bits: int, signed: bool) -> int:
    return (_DIGITS if signed else _UDIGITS)[bits]


def _numbers(native: SqlType, target: SqlType) -> Verdict:
    """Numbers into numbers, as :func:`numeric_cast` and the decimal casts convert them."""
    a, b = _int(native.name), _int(target.name)
    if a and b:
        (wa, sa), (wb, sb) = a, b
        fits = wb >= wa if sa == sb else sb and wb > wa
        return "widening" if fits else "narrowing"
    if a and target.name == "decimal":
        whole = (target.precision or 38) - (target.scale or 0)
        return "widening" if whole >= _digits(*a) else "narrowing"
    if a and target.name in _MANTISSA:
        return "widening" if a[0] <= _MANTISSA[target.name] else "narrowing"
    if native.name == "decimal" and target.name == "decimal":
        scale_a, scale_b = native.scale or 0, target.scale or 0
        whole_a, whole_b = (native.precision or 38) - scale_a, (target.precision or 38) - scale_b
        return "widening" if scale_b >= scale_a and whole_b >= whole_a else "narrowing"
    if native.name == "decimal" and b:
        if not native.scale and (native.precision or 38) < _digits(*b):
            return "widening"
        return "narrowing"
    if native.name in _FLOAT_BITS and target.name in _FLOAT_BITS:
        # a narrower float would round: refused, never checked value by value
        return "widening" if _FLOAT_BITS[target.name] >= _FLOAT_BITS[native.name] else "mismatch"
    return "mismatch"  # binary floats have no exact decimal or integer; decimals no exact float


def _strings(native: SqlType, target: SqlType) -> Verdict:
    """Strings into strings: a bounded target checks every value's length."""
    if target.precision is None:
        return "widening"
    if native.precision is not None and native.precision <= target.precision:
        return "widening"
    return "narrowing"


def read_verdict(native: SqlType, target: SqlType) -> Verdict:
    """Whether :func:`convert` reads a column of design type ``native`` as ``target``.

    This is the one table of conversions: sources refuse a ``mismatch`` before reading (and
    ``conveyor validate`` reports the same verdict as an error), and :func:`convert`
    implements every other pair, checking values where the verdict is ``narrowing``.
    Engines add what their server renders (any column as ``text``) on top of it.
    """
    if native.is_array != target.is_array:
        return "mismatch"
    if native.is_array:
        return read_verdict(native.element, target.element)
    if native == target:
        return "same"
    n, t = native.name, target.name
    numeric = _int(n) is not None or n in _FLOAT_BITS or n == "decimal"
    if t in STRING_TYPES:
        if n in STRING_TYPES:
            return _strings(native, target)
        if n == "json":
            return _strings(SqlType("text"), target)
        return "narrowing" if n == "bytes" else "mismatch"  # bytes must be UTF-8
    if t == "json":
        return "narrowing" if n in STRING_TYPES or n == "bytes" else "mismatch"
    if t == "uuid":
        return "narrowing" if n in STRING_TYPES else "mismatch"
    if t == "bytes":
        return "widening" if n in STRING_TYPES or n in ("json", "uuid") else "mismatch"
    if t == "boolean":
        return "narrowing" if _int(n) is not None else "mismatch"
    if t == "decimal" and n in STRING_TYPES:
        return "narrowing"
    if numeric and (t == "decimal" or _int(t) is not None or t in _FLOAT_BITS):
        return _numbers(native, target)
    return "mismatch"  # dates, times and timestamps read only as themselves


def refuse(verdict: Verdict, ref: ColumnRef, target: SqlType, *, mapped: bool = True) -> None:
    """Raise the extract's error for a ``mismatch`` (the read then reads nothing)."""
    if verdict == "mismatch":
        raise unsupported_override_error(ref, target) if mapped else unmapped_type_error(ref)
