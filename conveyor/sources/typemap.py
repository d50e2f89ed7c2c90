"""Helpers shared by the SQL sources: DSN masking, exact Arrow conversions, re-batching.

A source reads each column in a "wire" form its fast reader handles exactly (a decimal
as its decimal string, a MySQL date as its text) and converts it here into the exact
Arrow type of the design type. Every conversion either keeps every value or raises an
``ExtractError`` that names the source, table, column and the first offending value;
none rounds, truncates or wraps silently.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.design.types import SqlType
from conveyor.errors import ExtractError

log = logging.getLogger("conveyor.sources")

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


# --------------------------------------------------------------------------- conversions


def unwrap(arr: pa.Array) -> pa.Array:
    """Drop an extension type (e.g. ADBC's opaque numeric) to its storage array."""
    while isinstance(arr.type, pa.BaseExtensionType):
        arr = arr.storage
    return arr


def _first_bad(values: Sequence[Any], check: Any) -> object:
    """The first value for which ``check`` raises (used only on the error path)."""
    for value in values:
        if value is None:
            continue
        try:
            check(value)
        except Exception:
            return value
    return None


def decimal_from_string(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Cast decimal strings to ``target`` exactly; NaN, infinities, overflow and rounding raise."""
    arrow = target.arrow
    arr = unwrap(arr).cast(pa.string())
    try:
        return arr.cast(arrow, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass

    def check(text: str) -> None:
        pa.array([text]).cast(arrow, safe=True)

    bad = _first_bad(arr.to_pylist(), check)
    low = str(bad).lower().lstrip("+")
    special = {"nan": "NaN", "inf": "Infinity", "infinity": "Infinity", "-inf": "-Infinity", "-infinity": "-Infinity"}
    if low in special:
        raise ExtractError(
            f'{ref} holds the special value "{special[low]}", which a decimal cannot store.',
            hint="Filter it out with the design's `condition`, or read the column as `type: text`.",
        )
    raise value_error(ref, target, bad, "would lose digits or overflow")


def decimal_from_decimal(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Rescale a decimal array to ``target``; raises when a digit would be lost."""
    try:
        return arr.cast(target.arrow, safe=True)
    except pa.ArrowInvalid:
        bad = _first_bad(arr.to_pylist(), lambda v: pa.array([v], arr.type).cast(target.arrow, safe=True))
        raise value_error(ref, target, bad, "would lose digits or overflow") from None


def numeric_cast(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Safe numeric cast (int to int/decimal/float, decimal to decimal); raises on loss."""
    source = arr.type
    if pa.types.is_floating(source) and not pa.types.is_floating(target.arrow):
        raise unsupported_override_error(ref, target)
    if pa.types.is_floating(source) and target.arrow.bit_width < source.bit_width:
        raise unsupported_override_error(ref, target)
    if pa.types.is_integer(source) and pa.types.is_decimal(target.arrow):
        # Arrow refuses an integer into a decimal too narrow for the whole integer type,
        # whatever the values: go through a decimal every integer fits, then check the values
        return decimal_from_decimal(arr.cast(pa.decimal128(38, 0)), target, ref)
    try:
        return arr.cast(target.arrow, safe=True)
    except pa.ArrowInvalid:
        bad = _first_bad(arr.to_pylist(), lambda v: pa.array([v], source).cast(target.arrow, safe=True))
        raise value_error(ref, target, bad, "does not fit") from None


def boolean_from_int(arr: pa.Array, ref: ColumnRef) -> pa.Array:
    """Turn 0/1 integers into booleans; any other value raises (MySQL BOOL is tinyint(1))."""
    if pa.types.is_boolean(arr.type):
        return arr
    zero, one = pa.scalar(0, arr.type), pa.scalar(1, arr.type)  # no cast: a uint64 may not fit int64
    bad_mask = pc.and_kleene(pc.not_equal(arr, zero), pc.not_equal(arr, one))
    if pc.any(bad_mask).as_py():
        bad = pc.filter(arr, bad_mask)[0].as_py()
        raise ExtractError(
            f"{ref} holds the value {bad}; a boolean column must hold only 0, 1 or NULL.",
            hint="Declare the column as `type: tinyint` in the design to read it as a number.",
        )
    return pc.not_equal(arr, zero)


def uuid_from_any(arr: pa.Array, ref: ColumnRef) -> pa.Array:
    """Build a ``pa.uuid()`` array from 16-byte binaries or UUID strings."""
    if isinstance(arr.type, pa.UuidType):
        return arr
    arr = unwrap(arr)
    if pa.types.is_fixed_size_binary(arr.type) and arr.type.byte_width == 16:
        return pa.ExtensionArray.from_storage(pa.uuid(), arr)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        # uuids stored as text (MariaDB's uuid type, MySQL char(36)): parse each one
        out: list[bytes | None] = []
        for text in arr.to_pylist():
            try:
                out.append(None if text is None else uuid.UUID(text).bytes)
            except ValueError:
                raise value_error(ref, "uuid", text, "is not a UUID") from None
        return pa.ExtensionArray.from_storage(pa.uuid(), pa.array(out, pa.binary(16)))
    raise ExtractError(f"{ref} cannot be read as uuid.", hint=OVERRIDE_HINT)


def list_convert(arr: pa.Array, target: SqlType, ref: ColumnRef, element: Any) -> pa.Array:
    """Convert the elements of a list array with ``element(values) -> values``."""
    arr = unwrap(arr)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise unsupported_override_error(ref, target)
    arr = arr.cast(pa.list_(arr.type.value_type)) if pa.types.is_large_list(arr.type) else arr
    offsets = arr.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    values = element(arr.values.slice(start, end - start))
    if start:
        offsets = pc.subtract(offsets, start)
    return pa.ListArray.from_arrays(offsets, values, type=target.arrow, mask=arr.is_null())


def to_text(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Strings (or UTF-8 bytes) as ``pa.string()``; invalid UTF-8, or a value longer than a
    ``varchar(n)`` or ``char(n)`` target allows, raises."""
    arr = unwrap(arr)
    if pa.types.is_large_string(arr.type) or pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        try:
            arr = arr.cast(pa.string())
        except pa.ArrowInvalid:
            raise ExtractError(f"{ref} holds bytes that are not valid UTF-8.", hint=OVERRIDE_HINT) from None
    if not pa.types.is_string(arr.type):
        raise unsupported_override_error(ref, target)
    if target.precision is not None and len(arr):
        too_long = pc.greater(pc.utf8_length(arr), target.precision)
        if pc.any(too_long).as_py():
            bad = pc.filter(arr, too_long)[0].as_py()
            raise value_error(ref, target, bad, f"is longer than {target.precision} characters")
    return arr


def to_bytes(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Any binary array as ``pa.binary()``."""
    arr = unwrap(arr)
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type) or pa.types.is_fixed_size_binary(arr.type):
        return arr.cast(pa.binary())
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr.cast(pa.binary())
    raise unsupported_override_error(ref, target)


def to_json(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """JSON text as ``pa.json_()``; text that is not one JSON document raises."""
    if isinstance(arr.type, pa.JsonType):
        return arr
    text = to_text(arr, SqlType("text"), ref)
    for value in text.to_pylist():
        if value is not None and not is_json(value):
            raise value_error(ref, target, value, "is not a JSON document")
    return pa.ExtensionArray.from_storage(pa.json_(), text)


def is_json(text: str) -> bool:
    def refuse(constant: str) -> object:
        raise ValueError(constant)  # NaN and Infinity are not JSON

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return False
    return True


def int_from_string(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Decimal text (a numeric the server rendered) as an integer; a fraction or overflow raises."""
    try:
        whole = arr.cast(pa.decimal256(76, 0), safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _first_bad(arr.to_pylist(), lambda v: pa.array([v]).cast(pa.decimal256(76, 0), safe=True))
        raise value_error(ref, target, bad, "is not a whole number that fits") from None
    return numeric_cast(whole, target, ref)


def convert(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Convert a wire array into ``target.arrow`` exactly, or raise ``ExtractError``.

    Handles the generic cases; sources pre-process engine quirks (sentinels, zero dates)
    before calling this.
    """
    want = target.arrow
    if arr.type == want:
        return arr
    if target.is_array:
        return list_convert(arr, target, ref, lambda values: convert(values, target.element, ref))
    name = target.name
    raw = unwrap(arr)
    if name == "decimal":
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            return decimal_from_string(raw, target, ref)
        if pa.types.is_decimal(raw.type):
            return decimal_from_decimal(raw, target, ref)
        if pa.types.is_integer(raw.type):
            return numeric_cast(raw, target, ref)
        raise unsupported_override_error(ref, target)
    if name in ("text", "varchar", "char"):
        return to_text(raw, target, ref)
    if name == "json":
        return to_json(arr, target, ref)
    if name == "uuid":
        return uuid_from_any(arr, ref)
    if name == "bytes":
        return to_bytes(raw, target, ref)
    if name == "boolean" and pa.types.is_integer(raw.type):
        return boolean_from_int(raw, ref)
    if pa.types.is_integer(want) and (pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)):
        return int_from_string(raw, target, ref)  # a numeric sent as its text
    numeric_source = pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_decimal(raw.type)
    if numeric_source and (pa.types.is_integer(want) or pa.types.is_floating(want)):
        if pa.types.is_decimal(raw.type) and not pa.types.is_integer(want):
            raise unsupported_override_error(ref, target)
        return numeric_cast(raw, target, ref)
    if pa.types.is_temporal(raw.type) and raw.type == want:
        return raw
    raise unsupported_override_error(ref, target)


# --------------------------------------------------------------------------- batching


def rebatch(batches: Iterable[pa.RecordBatch], schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Yield batches of exactly ``batch_rows`` rows (the last may be shorter) with ``schema``.

    Whole slices of an incoming batch are yielded without copying; only the rows that
    straddle two incoming batches are concatenated. Holds at most ``batch_rows`` pending
    rows plus one incoming batch.
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        offset = 0
        if count and count + batch.num_rows >= batch_rows:
            offset = batch_rows - count
            pending.append(batch.slice(0, offset))
            yield _concat(pending, schema)
            pending, count = [], 0
        while batch.num_rows - offset >= batch_rows:
            yield batch.slice(offset, batch_rows)
            offset += batch_rows
        if offset < batch.num_rows:
            pending.append(batch.slice(offset))
            count += batch.num_rows - offset
    if count:
        yield _concat(pending, schema)


def _concat(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.concat_batches(batches)


def assemble(arrays: Sequence[pa.Array], schema: pa.Schema) -> pa.RecordBatch:
    """One batch with exactly ``schema`` (field names, types, nullability, no metadata)."""
    return pa.RecordBatch.from_arrays(list(arrays), schema=schema)


# --------------------------------------------------------------------------- partitions
