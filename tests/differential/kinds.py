"""Column kinds, value strategies biased to edges, and the canonical form values are compared in.

A :class:`Kind` is one upstream column type: its DDL, a hypothesis strategy of Python values
the engine's driver binds, and the *comparison key* saying how a value read back (by the
upstream driver, from the lake, from either warehouse) is brought to one exact Python form:
``int``; ``decimal`` (by value); ``number`` (a Decimal or its exact text); ``float64`` and
``float32`` (bit-exact through ``repr``: -0.0 and NaN stay themselves); ``text`` (exact);
``char`` (exact up to trailing blanks, which SQL ``char(n)`` does not count); ``bytes``;
``bool``; ``date``; ``time``; ``ts`` (naive); ``tstz`` (an aware instant, compared in UTC);
``uuid``; ``json`` (parsed, numbers as Decimal; the lake and DuckDB must also hold the
upstream's exact text); and ``array:<key>``.

A kind whose values Python cannot hold (BC dates) is read through a ``probe``: an SQL
expression per dialect that turns the column into an integer on every side.
"""

from __future__ import annotations

import json
import math
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Context, Decimal
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Kind:
    """One upstream column type and how its values are generated and compared."""

    label: str
    ddl: str
    values: st.SearchStrategy[Any] = field(compare=False)
    key: str
    bind: str = "%s"
    """The placeholder as written in the INSERT, e.g. ``%s::numeric(12,2)``."""
    probe: dict[str, str] | None = None
    """Dialect -> expression over ``{c}`` read instead of the column (key is then ``int``)."""
    upstream_read: str = "{c}"
    """How the upstream driver selects it (e.g. ``{c}::text`` for json, whose text is the value)."""
    from_driver: Callable[[Any], Any] | None = field(default=None, compare=False)
    """Turns the driver's value into the documented exact value (e.g. MySQL tinyint(1) 1 -> True)."""

    def __repr__(self) -> str:
        return self.label

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints examples with this
        printer.text(self.label)


# ------------------------------------------------------------------------------ strategies

EDGE_TEXT = [
    "", " ", "  ", "a ", " a", "ab  ", "ünïcödé", "😀", "𝄞 x", "e\u0301", "\t", "\n", "a\r\nb", "\\", "\\N",
    "'", '"', "NULL", "null", ",", "|", "ß", "İ", "\u200b", "Ω≈ç√", "日本語", "\u202eabc",
]  # fmt: skip


def texts(max_size: int = 12, *, nul: bool = False, edges: list[str] | None = None) -> st.SearchStrategy[str]:
    """Unicode text (no lone surrogates, NUL only with ``nul``) mixed with hand-picked edge values."""
    banned = "" if nul else "\x00"
    alphabet = st.characters(exclude_categories=("Cs",), exclude_characters=banned)
    pool = [t for t in (edges if edges is not None else EDGE_TEXT) if len(t) <= max_size]
    return st.one_of(st.sampled_from(pool), st.text(alphabet, max_size=max_size))


def ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = sorted({low, high, low + 1, high - 1, 0 if low <= 0 <= high else low})
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


_EXACT = Context(prec=200)


def decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Values of ``numeric(precision, scale)``: k * 10**-scale with |k| < 10**precision (any scale sign)."""
    top = 10**precision - 1

    def make(k: int) -> Decimal:
        return Decimal(k).scaleb(-scale, _EXACT)

    return st.one_of(st.sampled_from([top, -top, 0, 1, -1]), st.integers(-top, top)).map(make)


FLOAT64_EDGES = [
    math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 0.1,
]  # fmt: skip
FLOAT32_EDGES = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    1.401298464324817e-45,
    3.4028234663852886e38,
    1.1754943508222875e-38,
]


def floats64(*, special: bool = True) -> st.SearchStrategy[float]:
    edges = FLOAT64_EDGES if special else [f for f in FLOAT64_EDGES if math.isfinite(f)]
    return st.one_of(st.sampled_from(edges), st.floats(allow_nan=special, allow_infinity=special))


def floats32(*, special: bool = True) -> st.SearchStrategy[float]:
    edges = FLOAT32_EDGES if special else [f for f in FLOAT32_EDGES if math.isfinite(f)]
    return st.one_of(st.sampled_from(edges), st.floats(width=32, allow_nan=special, allow_infinity=special))


def dates(low: date = date(1, 1, 1), high: date = date(9999, 12, 31)) -> st.SearchStrategy[date]:
    return st.one_of(st.sampled_from([low, high, date(1970, 1, 1), date(2000, 2, 29)]), st.dates(low, high))


def times() -> st.SearchStrategy[time]:
    return st.one_of(st.sampled_from([time(0), time(23, 59, 59, 999999), time(12, 0, 0, 1)]), st.times())


def timestamps(low: datetime = datetime(1, 1, 1), high: datetime = datetime(9999, 12, 31, 23, 59, 59, 999999)):
    edges = [
        low,
        high,
        datetime(1970, 1, 1),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(2000, 2, 29, 0, 0, 0, 1),
    ]
    return st.one_of(st.sampled_from(edges), st.datetimes(low, high))


OFFSETS = [
    timedelta(0),
    timedelta(hours=5, minutes=30),
    timedelta(hours=-11),
    timedelta(hours=14),
    timedelta(minutes=-1),
]


def instants(low: datetime = datetime(2, 1, 1), high: datetime = datetime(9998, 12, 31)) -> st.SearchStrategy[datetime]:
    """Aware datetimes at fixed offsets (an offset moves the wall clock, never the instant)."""
    zones = st.sampled_from([timezone(o) for o in OFFSETS])
    return st.builds(lambda d, z: d.replace(tzinfo=z), timestamps(low, high), zones)


def uuids() -> st.SearchStrategy[uuid.UUID]:
    edges = [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")]
    return st.one_of(st.sampled_from(edges), st.uuids())


def json_texts(*, nul: bool = False) -> st.SearchStrategy[str]:
    """JSON documents as text, in varied spellings (spacing, escaped or raw non-ASCII)."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
        texts(8, nul=nul),
    )  # fmt: skip
    docs = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(5, nul=nul), inner, max_size=3),
        max_leaves=6,
    )
    spacing = st.sampled_from([(", ", ": "), (",", ":")])
    return st.builds(lambda d, a, sep: json.dumps(d, ensure_ascii=a, separators=sep), docs, st.booleans(), spacing)


# ------------------------------------------------------------------------------ canonical form


def canon(key: str, value: Any, *, exact_json: bool = False) -> Any:
    """The exact comparable form of ``value`` for comparison key ``key`` (raises on a wrong type)."""
    if value is None:
        return None
    if key.startswith("array:"):
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {type(value).__name__} {value!r}")
        return [canon(key.removeprefix("array:"), v, exact_json=exact_json) for v in value]
    return _CANON[key](value, exact_json) if key == "json" else _CANON[key](value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError(f"expected an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def _decimal(value: Any) -> Any:
    if not isinstance(value, Decimal):
        raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")
    return ("decimal", value.normalize() if value else Decimal(0))


def _number(value: Any) -> Any:
    """A decimal read as a Decimal or as its exact text (either keeps every digit)."""
    if isinstance(value, str):
        value = Decimal(value)
    return _decimal(value)


def _float64(value: Any) -> str:
    if not isinstance(value, float):
        raise TypeError(f"expected a float, got {type(value).__name__} {value!r}")
    return "nan" if math.isnan(value) else repr(value)


def _float32(value: Any) -> str:
    if not isinstance(value, float):
        raise TypeError(f"expected a float, got {type(value).__name__} {value!r}")
    if math.isnan(value):
        return "nan"
    return repr(struct.unpack("f", struct.pack("f", value))[0])


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__} {value!r}")
    return value


def _char(value: Any) -> str:
    return _text(value).rstrip(" ")


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(value).__name__} {value!r}")
    return bytes(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__} {value!r}")
    return value


def _date(value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"expected a date, got {type(value).__name__} {value!r}")
    return value


def _time(value: Any) -> time:
    if isinstance(value, timedelta):  # pymysql reads TIME as a duration
        value = (datetime.min + value).time()
    if not isinstance(value, time) or value.tzinfo is not None:
        raise TypeError(f"expected a naive time, got {type(value).__name__} {value!r}")
    return value


def _ts(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is not None:
        raise TypeError(f"expected a naive timestamp, got {type(value).__name__} {value!r}")
    return value


def _tstz(value: Any) -> Any:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError(f"expected an aware timestamp, got {type(value).__name__} {value!r}")
    return ("instant", value.astimezone(UTC).replace(tzinfo=None))


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    if not isinstance(value, uuid.UUID | str):
        raise TypeError(f"expected a UUID, got {type(value).__name__} {value!r}")
    return uuid.UUID(str(value))


def _json(value: Any, exact: bool) -> Any:
    if not isinstance(value, str):
        raise TypeError(f"expected JSON text, got {type(value).__name__} {value!r}")
    parsed = json.loads(value, parse_float=Decimal, parse_int=Decimal)
    return ("json", value) if exact else ("json", _normal(parsed))


def _normal(doc: Any) -> Any:
    if isinstance(doc, Decimal):
        return doc.normalize() if doc else Decimal(0)
    if isinstance(doc, list):
        return [_normal(v) for v in doc]
    if isinstance(doc, dict):
        return {k: _normal(v) for k, v in doc.items()}
    return doc


_CANON: dict[str, Any] = {
    "int": _int,
    "decimal": _decimal,
    "number": _number,
    "float64": _float64,
    "float32": _float32,
    "text": _text,
    "char": _char,
    "bytes": _bytes,
    "bool": _bool,
    "date": _date,
    "time": _time,
    "ts": _ts,
    "tstz": _tstz,
    "uuid": _uuid,
    "json": _json,
}
