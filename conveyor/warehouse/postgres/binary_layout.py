"""PostgreSQL's binary COPY format: the file header and trailer, the field layout of a batch, and the
error a value that cannot be encoded exactly raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
"""The header of a binary COPY stream: signature, flags, header extension length."""
TRAILER = b"\xff\xff"
"""The end of a binary COPY stream (a field count of -1)."""
NULL_FIELD = b"\xff\xff\xff\xff"
EMPTY = pa.scalar(b"", pa.binary())
PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400_000_000
# PostgreSQL's ranges (datatype/timestamp.h) in days or microseconds since 1970-01-01: dates
# from julian day 0 (4714-11-24 BC) to 5874898-01-01, timestamps to 294277-01-01 (exclusive)
_UNIX_EPOCH_JULIAN = 2_440_588
MIN_DAY = 0 - _UNIX_EPOCH_JULIAN
MAX_DAY = 2_147_483_494 - _UNIX_EPOCH_JULIAN
MIN_US = MIN_DAY * 86_400_000_000
MAX_US = (109_203_528 - _UNIX_EPOCH_JULIAN) * 86_400_000_000
CHUNK_BYTES = 32 * 1024 * 1024
"""Encoded bytes per chunk, about: a larger batch is split. Bounds memory, and keeps binary
offsets far below 2**31."""


class EncodeError(ValueError):
    """A column cannot be encoded exactly; the message names the column."""


@dataclass(frozen=True)
class PgColumn:
    """A column of the target table, as the catalog describes it."""

    name: str
    type_name: str
    """``pg_type.typname``: ``int8``, ``numeric``, ``_text`` (arrays start with ``_``) ..."""
    type_mod: int = -1
    """``pg_attribute.atttypmod``; for numeric it carries precision and scale."""
    element_name: str | None = None
    """For arrays: the element's typname."""
    element_oid: int = 0
    """For arrays: the element's type OID (the binary array format names it)."""

    @property
    def is_array(self) -> bool:
        return self.element_name is not None

    @property
    def numeric_precision_scale(self) -> tuple[int, int] | None:
        """(precision, scale) of a ``numeric(p,s)`` column, None when unconstrained."""
        if self.type_mod < 4:
            return None
        mod = self.type_mod - 4
        scale = ((mod & 0x7FF) ^ 1024) - 1024
        return (mod >> 16) & 0xFFFF, scale


@dataclass(frozen=True)
class Fixed:
    """Values of one fixed-width column: a numpy dtype (big-endian) and values assignable to it."""

    dtype: np.dtype[Any]
    values: np.ndarray


Encoded = Fixed | list[pa.Array | pa.Scalar]
"""What a column encoder returns: fixed-width values, or join arguments that form its fields
(the first one NULL where the value is NULL; the others never NULL)."""
ColumnEncoder = Callable[[pa.Array], Encoded]


@lru_cache(maxsize=256)
def field_layout(dtypes: tuple[np.dtype[Any], ...]) -> np.dtype[Any]:
    """The packed row layout: field count, then each field's length and value."""
    names: list[str] = ["count"]
    formats: list[np.dtype[Any]] = [np.dtype(">i2")]
    offsets = [0]
    position = 2
    for index, dtype in enumerate(dtypes):
        names += [f"l{index}", f"v{index}"]
        formats += [np.dtype(">i4"), dtype]
        offsets += [position, position + 4]
        position += 4 + dtype.itemsize
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": position})


def data_buffer(array: pa.Array) -> pa.Buffer:
    """The contiguous value bytes of a binary array."""
    offsets = buffer_of(array.buffers()[1], np.int32, array.offset + len(array) + 1)
    start, end = int(offsets[array.offset]), int(offsets[-1])
    return array.buffers()[2].slice(start, end - start)


@lru_cache(maxsize=64)
def offset_steps(n: int, step: int) -> pa.Buffer:
    """Offsets 0, step, 2*step ... n*step as an int32 buffer (cached: batches repeat sizes)."""
    if n * step >= 2**31:
        raise EncodeError(f"{n} values of {step} bytes are too many for one chunk")
    return pa.py_buffer(np.arange(0, (n + 1) * step, step, dtype=np.int32))


def buffer_of(buffer: pa.Buffer, dtype: Any, count: int) -> np.ndarray:
    """The first ``count`` items of an Arrow buffer, as numpy, without copying."""
    return np.frombuffer(buffer, dtype=dtype, count=count)


def validity_buffer(array: pa.Array) -> pa.Buffer | None:
    """A validity bitmap starting at bit 0, or None when there is no NULL."""
    if array.null_count == 0:
        return None
    if array.offset == 0:
        return array.buffers()[0]
    return pc.is_valid(array).buffers()[1]


def valid_mask(array: pa.Array) -> np.ndarray | None:
    """A boolean numpy mask of the non-NULL values, or None when there is no NULL."""
    if array.null_count == 0:
        return None
    return np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=bool)


def values_buffer(array: pa.Array, dtype: str) -> np.ndarray:
    """The data buffer of a fixed-width array as numpy (NULL slots hold arbitrary values)."""
    return buffer_of(array.buffers()[1], dtype, array.offset + len(array))[array.offset :]


def fixed_fields(fixed: Fixed, array: pa.Array) -> pa.Array:
    """Fields of one fixed-width column as a binary array, NULL where ``array`` is NULL."""
    n = len(array)
    layout = np.dtype({"names": ["l", "v"], "formats": [">i4", fixed.dtype], "offsets": [0, 4]})
    out = np.empty(n, dtype=layout)
    out["l"] = fixed.dtype.itemsize
    out["v"] = fixed.values
    return pa.Array.from_buffers(
        pa.binary(),
        n,
        [validity_buffer(array), offset_steps(n, layout.itemsize), pa.py_buffer(out)],
        null_count=array.null_count,
    )


def finish_fields(fixed: Fixed, array: pa.Array) -> Encoded:
    """Fixed values when the batch has no NULL in the column, else its fields with NULLs."""
    return fixed if array.null_count == 0 else [fixed_fields(fixed, array)]


def check_range(array: pa.Array, low: int, high: int, what: str, show: Callable[[int], str]) -> None:
    """Every non-NULL int value of ``array`` must lie in [low, high)."""
    if len(array) == array.null_count:
        return
    bounds = pc.min_max(array)
    smallest, largest = bounds["min"].as_py(), bounds["max"].as_py()
    if smallest < low or largest >= high:
        bad = smallest if smallest < low else largest
        raise EncodeError(f"{show(bad)} is outside the range of a PostgreSQL {what}")
