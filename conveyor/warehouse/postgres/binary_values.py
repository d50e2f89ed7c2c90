"""Encoders of one column's values into PostgreSQL's binary representations (numbers, text, dates
and times, intervals, bytes, numerics), each exact or refusing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.warehouse.postgres.binary_layout import (
    EMPTY,
    MAX_DAY,
    MAX_US,
    MIN_DAY,
    MIN_US,
    PG_EPOCH_DAYS,
    PG_EPOCH_US,
    ColumnEncoder,
    Encoded,
    EncodeError,
    Fixed,
    PgColumn,
    buffer_of,
    check_range,
    finish_fields,
    offset_steps,
    valid_mask,
    validity_buffer,
    values_buffer,
)


def rtrimmed(encoder: ColumnEncoder) -> ColumnEncoder:
    """``encoder`` over the strings without their trailing blanks (a design's ``char(n)``)."""

    def encode(array: pa.Array) -> Encoded:
        return encoder(pc.utf8_rtrim(array, characters=" "))

    return encode


def storage_type(arrow_type: pa.DataType) -> pa.DataType:
    return arrow_type.storage_type if isinstance(arrow_type, pa.BaseExtensionType) else arrow_type


def plain_values(array: pa.Array) -> pa.Array:
    return array.storage if isinstance(array, pa.ExtensionArray) else array


INT_TYPES = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64()}
FLOAT_TYPES = {"float4": pa.float32(), "float8": pa.float64()}
TEXT_TYPES = {"text", "varchar", "bpchar", "name", "json", "xml", "citext"}


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def is_bytes(t: pa.DataType) -> bool:
    return (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )


def cast_fixed(target: pa.DataType) -> ColumnEncoder:
    native = np.dtype(target.to_pandas_dtype())
    big = native.newbyteorder(">")

    def encode(array: pa.Array) -> Encoded:
        exact = array if array.type == target else array.cast(target)  # safe: overflow is an error
        return finish_fields(Fixed(big, values_buffer(exact, native.str)), array)

    return encode


def bool_values(array: pa.Array) -> Encoded:
    end = array.offset + len(array)
    bits = buffer_of(array.buffers()[1], np.uint8, (end + 7) // 8)
    return finish_fields(Fixed(np.dtype("u1"), np.unpackbits(bits, bitorder="little")[array.offset : end]), array)


def uuid_values(array: pa.Array) -> Encoded:
    plain = plain_values(array)
    raw = buffer_of(plain.buffers()[1], np.uint8, 16 * (plain.offset + len(plain))).reshape(-1, 16)
    return finish_fields(Fixed(np.dtype(("u1", (16,))), raw[plain.offset :]), plain)


def date_values(array: pa.Array) -> Encoded:
    days = array if array.type == pa.date32() else array.cast(pa.date32())
    check_range(days.view(pa.int32()), MIN_DAY, MAX_DAY, "date", lambda d: f"the date {d} days after 1970-01-01")
    values = values_buffer(days, "=i4") - np.int32(PG_EPOCH_DAYS)  # in range, so no overflow
    return finish_fields(Fixed(np.dtype(">i4"), values), array)


def time_values(array: pa.Array) -> Encoded:
    micros = array if array.type == pa.time64("us") else array.cast(pa.time64("us"))  # safe cast: exact or error
    return finish_fields(Fixed(np.dtype(">i8"), values_buffer(micros, "=i8")), array)


def timestamp_values(array: pa.Array) -> Encoded:
    t = array.type
    micros = array if t.unit == "us" else array.cast(pa.timestamp("us", tz=t.tz))  # safe cast: exact or error
    check_range(micros.view(pa.int64()), MIN_US, MAX_US, "timestamp", lambda v: f"{v} microseconds after 1970-01-01")
    return finish_fields(Fixed(np.dtype(">i8"), values_buffer(micros, "=i8") - np.int64(PG_EPOCH_US)), array)


_INTERVAL_IN = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])
_INTERVAL_OUT = np.dtype([("micros", ">i8"), ("days", ">i4"), ("months", ">i4")])


def interval_values(array: pa.Array) -> Encoded:
    n = len(array)
    out = np.zeros(n, dtype=_INTERVAL_OUT)
    if pa.types.is_duration(array.type):
        micros = array if array.type.unit == "us" else array.cast(pa.duration("us"))  # safe: exact or error
        out["micros"] = values_buffer(micros, "=i8")
    else:
        raw = buffer_of(array.buffers()[1], _INTERVAL_IN, array.offset + n)[array.offset :]
        mask = valid_mask(array)
        nanos = raw["nanos"] if mask is None else np.where(mask, raw["nanos"], 0)
        inexact = np.nonzero(nanos % 1000)[0]
        if len(inexact):
            raise EncodeError(f"an interval with {int(nanos[inexact[0]])} nanoseconds has no exact microsecond value")
        out["micros"] = nanos // 1000
        out["days"] = raw["days"]
        out["months"] = raw["months"]
    return finish_fields(Fixed(_INTERVAL_OUT, out), array)


def bytes_encoder(prefix: bytes) -> ColumnEncoder:
    """Text, jsonb and bytea: the length, ``prefix`` (jsonb's version byte), then the bytes."""
    extra = pa.scalar(prefix, pa.binary()) if prefix else None

    def encode(array: pa.Array) -> Encoded:
        plain = plain_values(array)
        values = _as_binary(plain)
        n = len(values)
        offset_type = np.int64 if pa.types.is_large_binary(values.type) else np.int32
        bounds = buffer_of(values.buffers()[1], offset_type, values.offset + n + 1)[values.offset :]
        lengths = (np.diff(bounds) + len(prefix)).astype(">i4")
        if values.type != pa.binary():
            values = values.cast(pa.binary())
        length_fields = pa.Array.from_buffers(
            pa.binary(),
            n,
            [validity_buffer(plain), offset_steps(n, 4), pa.py_buffer(lengths)],
            null_count=plain.null_count,
        )
        if not values.null_count:
            return [length_fields, *([extra] if extra is not None else []), values]
        # the length field carries the NULL; the value must add no byte after it
        if extra is not None:
            values = pc.binary_join_element_wise(extra, values, EMPTY)
        return [length_fields, pc.fill_null(values, EMPTY)]

    return encode


def _as_binary(array: pa.Array) -> pa.Array:
    """A binary or large_binary view of a string/binary array (zero-copy where possible)."""
    t = array.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return array
    if pa.types.is_string(t):
        return array.view(pa.binary())
    if pa.types.is_large_string(t):
        return array.view(pa.large_binary())
    return array.cast(pa.binary())


def numeric_encoder(column: PgColumn, t: pa.DataType) -> tuple[int, ColumnEncoder]:
    declared = column.numeric_precision_scale
    if declared is not None:
        precision, scale = declared
        if scale < 0 or scale > precision:
            raise EncodeError(f'column "{column.name}": numeric({precision},{scale}) is not supported')
    elif pa.types.is_decimal(t):
        scale = max(t.scale, 0)
        precision = max(t.precision - t.scale, 1) + scale
    else:
        precision, scale = 20, 0  # integers up to 64 bits
    target = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    layout = _numeric_layout(precision, scale)
    ndigits, integer, _ = _numeric_digits(precision, scale)
    scratch: list[np.ndarray] = []  # one buffer reused batch after batch (its values are always copied)

    def encode(array: pa.Array) -> Encoded:
        decimals = array if array.type == target else array.cast(target)  # safe: overflow is an error
        n = len(decimals)
        if not scratch or len(scratch[0]) < n:
            buffer = np.empty((max(n, 65_536), 4 + ndigits), dtype=np.int16)
            buffer[:, 0] = ndigits
            buffer[:, 1] = integer - 1  # weight: the power of 10000 of the first digit
            buffer[:, 3] = scale
            scratch[:] = [buffer]
        out = scratch[0][:n]
        _numeric_values(decimals, precision, scale, out)
        return finish_fields(Fixed(layout, out), array)

    return layout.itemsize, encode


def _numeric_layout(precision: int, scale: int) -> np.dtype[Any]:
    """ndigits, weight, sign, dscale, then the base-10000 digits: all big-endian int16."""
    return np.dtype((">i2", (4 + _numeric_digits(precision, scale)[0],)))


def _numeric_digits(precision: int, scale: int) -> tuple[int, int, int]:
    """(digits, integer digits, decimal places that pad the last fractional digit) of numeric(p,s)."""
    fraction = math.ceil(scale / 4)
    integer = math.ceil((precision - scale) / 4)
    return max(fraction + integer, 1), integer, 4 * fraction - scale


def _numeric_values(array: pa.Array, precision: int, scale: int, out: np.ndarray) -> None:
    """Fill ``out`` with ``numeric`` values in the binary format, one row of int16 per value.

    ``out`` has its ndigits, weight and dscale columns (0, 1 and 3) set already; this sets
    the sign and the digits. Every value of a column gets the same number of digits
    (leading and trailing zero digits included), so fields have a fixed width; the server
    strips the zeros. The digits come from the decimal's integer by repeated division by
    10000, after the lowest group is scaled so the decimal point falls between two groups.
    """
    ndigits, _, pad = _numeric_digits(precision, scale)
    negative, limbs = _magnitude(array, precision)
    out[:, 2] = np.where(negative, 0x4000, 0)
    for position in range(ndigits - 1, -1, -1):
        lowest = position == ndigits - 1 and pad > 0
        limbs, remainder = _divmod(limbs, 10 ** (4 - pad) if lowest else 10_000)
        out[:, 4 + position] = remainder * (10**pad) if lowest else remainder
    if any(np.any(limb) for limb in limbs):
        raise EncodeError(f"a value has more than {precision} digits")


def _magnitude(array: pa.Array, precision: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sign and absolute value of decimals, as uint64 limbs (least significant first).

    Up to 19 digits the absolute value is one limb; beyond, limbs hold 32 bits each so that
    long division by 10000 fits in 64-bit arithmetic. NULL slots become zero.
    """
    n = len(array)
    per_value = array.type.byte_width // 8
    words = buffer_of(array.buffers()[1], "<u8", (array.offset + n) * per_value)[array.offset * per_value :]
    words = words.reshape(n, per_value)
    mask = valid_mask(array)
    if mask is not None:
        words = np.where(mask[:, None], words, np.uint64(0))
    negative = words[:, -1].view(np.int64) < 0
    if precision <= 18:
        low = words[:, 0].view(np.int64)
        high_ok = np.all(words[:, 1:] == (low >> 63).view(np.uint64)[:, None])
        if not high_ok:
            raise EncodeError(f"a value has more than {precision} digits")
        return negative, [np.abs(low).view(np.uint64)]
    if negative.any():  # two's complement: invert and add one, carrying across words
        words = words.copy()
        words[negative] = ~words[negative]
        carry = negative.astype(np.uint64)
        for j in range(per_value):
            words[:, j] += carry
            carry = carry & (words[:, j] == 0)
    limbs = []
    for j in range(per_value):
        limbs.append(words[:, j] & np.uint64(0xFFFFFFFF))
        limbs.append(words[:, j] >> np.uint64(32))
    needed = max(1, math.ceil(precision * math.log2(10) / 32))
    if any(np.any(limb) for limb in limbs[needed:]):
        raise EncodeError(f"a value has more than {precision} digits")
    return negative, limbs[:needed]


def _divmod(limbs: list[np.ndarray], divisor: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Divide a number held in limbs by a small divisor: (quotient limbs, remainder).

    Floor division by a scalar is far faster than ``np.divmod`` (numpy divides by a
    constant with multiplications), so the remainder is computed from the quotient.
    """
    d = np.uint64(divisor)
    if len(limbs) == 1:
        quotient = limbs[0] // d
        return [quotient], limbs[0] - quotient * d
    remainder = np.zeros_like(limbs[0])
    result = list(limbs)
    for index in range(len(limbs) - 1, -1, -1):
        current = (remainder << np.uint64(32)) | limbs[index]
        result[index] = current // d
        remainder = current - result[index] * d
    while len(result) > 1 and not np.any(result[-1]):
        result.pop()
    return result, remainder
