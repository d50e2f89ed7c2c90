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
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.design.types import SqlType
from conveyor.errors import ExtractError
from conveyor.sources.verdict import (
    OVERRIDE_HINT,
    ColumnRef,
    unsupported_override_error,
    value_error,
)

log = logging.getLogger("conveyor.sources")

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
