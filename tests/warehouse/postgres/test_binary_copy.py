"""The binary COPY encoder: every type round-trips exactly through a real server, or is an error."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from decimal import Context, Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from conveyor.warehouse.postgres.binary import CopyEncoder, field_encoder
from conveyor.warehouse.postgres.binary_layout import EncodeError, PgColumn
from conveyor.warehouse.postgres.catalog import table_columns

UTC = dt.UTC


def load(dsn: str, ddl: str, batches: list[pa.RecordBatch]) -> list[tuple[Any, ...]]:
    """Create table t from ``ddl``, COPY ``batches`` into it with the encoder, return its rows in load order.

    A column "k" numbers the rows: a heap does not keep insertion order (a short row can
    fill the space left at the end of an earlier page).
    """
    numbered, start = [], 0
    for batch in batches:
        k = pa.array(range(start, start + batch.num_rows), pa.int64())
        numbered.append(pa.RecordBatch.from_arrays([k, *batch.columns], names=["k", *batch.schema.names]))
        start += batch.num_rows
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS t")
        con.execute(f"CREATE TABLE t (k int8, {ddl})".encode())
        con.execute("SET TIME ZONE 'UTC'")
        columns = table_columns(con, "public.t")
        encoder = CopyEncoder(columns, numbered[0].schema)
        names = ", ".join(f'"{c}"' for c in encoder.copy_columns)
        with con.cursor() as cur, cur.copy(f"COPY t ({names}) FROM STDIN (FORMAT binary)".encode()) as copy:
            copy.write(encoder.stream(numbered))
        select = ", ".join(f'"{c.name}"' for c in columns[1:])
        return con.execute(f"SELECT {select} FROM t ORDER BY k".encode()).fetchall()


ALL_TYPES = """
i2 int2, i4 int4, i8 int8, u8 numeric(20,0), f4 real, f8 double precision, b bool,
d1 numeric(10,2), d2 numeric(38,10), d3 numeric(76,20), d4 numeric(5,5), d5 numeric(18,0),
t text, v varchar(5), c char(3), j jsonb, by bytea, u uuid, da date, ti time, ts timestamp, tz timestamptz,
iv interval, ai int4[], at text[], an numeric(10,2)[], ab bytea[], au uuid[], ats timestamptz[]
"""


def all_types_batch() -> pa.RecordBatch:
    d = Decimal
    mdn = pa.MonthDayNano
    u1, u2 = uuid.UUID(int=1), uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    data = {
        "i2": pa.array([1, -32768, 32767, None], pa.int16()),
        "i4": pa.array([1, -(2**31), 2**31 - 1, None], pa.int32()),
        "i8": pa.array([1, -(2**63), 2**63 - 1, None], pa.int64()),
        "u8": pa.array([0, 2**64 - 1, 12345, None], pa.uint64()),
        "f4": pa.array([0.1, float("inf"), -1.5e-38, None], pa.float32()),
        "f8": pa.array([0.1, -0.0, 1.2345678901234567e-300, None], pa.float64()),
        "b": pa.array([True, False, None, True]),
        "d1": pa.array([d("0.01"), d("-12345678.99"), d("0"), None], pa.decimal128(10, 2)),
        "d2": pa.array(
            [
                d("1234567890123456789012345678.0123456789"),
                d("-0.0000000001"),
                d("-" + "9" * 28 + "." + "9" * 10),
                None,
            ],
            pa.decimal128(38, 10),
        ),
        "d3": pa.array(
            [d("1" * 56 + "." + "2" * 20), d("-1E-20"), d("-" + "9" * 56 + "." + "9" * 20), None],
            pa.decimal256(76, 20),
        ),
        "d4": pa.array([d("0.12345"), d("-0.00001"), d("0"), None], pa.decimal128(5, 5)),
        "d5": pa.array([d("999999999999999999"), d("-999999999999999999"), d("10000"), None], pa.decimal128(18, 0)),
        "t": pa.array(["", 'Zoë "q", comma\nnewline \\ backslash\t', "\\N", None]),
        "v": pa.array(["abc", "Łódź", "", None]),
        "c": pa.array(["ab", "xyz", "", None]),
        "j": pa.array(['{"a": [1, 2.5, "x"], "ü": null}', "[]", '"s"', None]).cast(pa.json_()),
        "by": pa.array([b"", b"\x00\xff\\x41", b"\\x00", None], pa.binary()),
        "u": pa.array([u1.bytes, u2.bytes, uuid.UUID(int=2**128 - 1).bytes, None], pa.binary(16)).cast(pa.uuid()),
        "da": pa.array([dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(9999, 12, 31), None]),
        "ti": pa.array([dt.time(0, 0), dt.time(23, 59, 59, 999999), dt.time(12, 30, 0, 500000), None], pa.time64("us")),
        "ts": pa.array(
            [
                dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
                dt.datetime(1, 1, 1),
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                None,
            ],
            pa.timestamp("us"),
        ),
        "tz": pa.array(
            [
                dt.datetime(2024, 1, 2, 1, 4, 5, 123456, UTC),
                dt.datetime(1900, 1, 1, tzinfo=UTC),
                dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
                None,
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "iv": pa.array(
            [mdn([1, 2, 3000]), mdn([-1, -2, -3_000_000]), mdn([0, 0, 0]), None], pa.month_day_nano_interval()
        ),
        "ai": pa.array([[1, None, 3], [], None, [2**31 - 1]], pa.list_(pa.int32())),
        "at": pa.array([["a", None, '"q"', ""], [], None, ["{x,y}"]], pa.list_(pa.string())),
        "an": pa.array([[d("1.50"), None], [], None, [d("-0.01")]], pa.list_(pa.decimal128(10, 2))),
        "ab": pa.array([[b"\x00", None], [], None, [b""]], pa.list_(pa.binary())),
        "au": pa.array([[u1.bytes], None, [], [None, u2.bytes]], pa.list_(pa.binary(16))),
        "ats": pa.array(
            [[dt.datetime(2000, 1, 1, tzinfo=UTC)], [], None, [None]], pa.list_(pa.timestamp("us", tz="UTC"))
        ),
    }
    return pa.RecordBatch.from_pydict(data)


def expected_value(name: str, value: Any) -> Any:
    """What psycopg returns for an Arrow Python value of column ``name``."""
    if value is None:
        return None
    if name == "u8":
        return Decimal(value)
    if name == "u":
        return value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=value)
    if name == "j":
        return json.loads(value)
    if name == "f4":
        return pytest.approx(value, rel=1e-7) if value == value else value
    if name == "c":
        return value.ljust(3)
    if name == "iv":
        return dt.timedelta(days=value.days + 30 * value.months, microseconds=value.nanoseconds // 1000)
    if name == "au":
        return [None if v is None else uuid.UUID(bytes=v) for v in value]
    return value


def got_value(name: str, value: Any) -> Any:
    if name in ("by",) and value is not None:
        return bytes(value)
    if name == "ab" and value is not None:
        return [None if v is None else bytes(v) for v in value]
    return value


@pytest.mark.postgres
def test_every_type_round_trips_exactly(pgwh_dsn: str) -> None:
    batch = all_types_batch()
    # the same rows again, from a slice (arrays with offsets), then a batch with no NULL at all
    no_nulls = pa.RecordBatch.from_pylist(batch.to_pylist()[:1], schema=batch.schema)
    rows = load(pgwh_dsn, ALL_TYPES, [batch, batch.slice(1, 2), no_nulls])
    expected = batch.to_pylist() + batch.to_pylist()[1:3] + batch.to_pylist()[:1]
    assert len(rows) == len(expected)
    names = batch.schema.names
    for row, want in zip(rows, expected, strict=True):
        for name, got in zip(names, row, strict=True):
            assert got_value(name, got) == expected_value(name, want[name]), name


@pytest.mark.postgres
def test_float_bits_are_kept(pgwh_dsn: str) -> None:
    values = [0.1, -0.0, float("nan"), float("inf"), float("-inf"), 5e-324, 1.7976931348623157e308]
    batch = pa.RecordBatch.from_pydict({"f": pa.array(values)})
    rows = load(pgwh_dsn, "f double precision", [batch])
    got = [r[0] for r in rows]
    assert [repr(v) for v in got] == [repr(v) for v in values]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("precision", "scale"), [(1, 0), (4, 4), (9, 3), (18, 2), (19, 0), (28, 7), (38, 0), (38, 37), (60, 30), (76, 0)]
)
def test_random_decimals_round_trip(pgwh_dsn: str, precision: int, scale: int) -> None:
    rng = random.Random(precision * 100 + scale)
    exact = Context(prec=200)  # the default context keeps 28 digits
    unscaled = [rng.randint(0, 10 ** rng.randint(0, precision) - 1) * rng.choice((1, -1)) for _ in range(500)]
    unscaled += [10**precision - 1, -(10**precision) + 1]
    values: list[Decimal | None] = [Decimal(u).scaleb(-scale, exact) for u in unscaled] + [None]
    arrow_type = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    batch = pa.RecordBatch.from_pydict({"d": pa.array(values, arrow_type)})
    rows = load(pgwh_dsn, f"d numeric({precision},{scale})", [batch, batch.slice(7, 100)])
    expected = values + values[7:107]
    assert [r[0] for r in rows] == expected
    assert all(r[0] is None or r[0].as_tuple().exponent == -scale for r in rows)  # display scale kept


@pytest.mark.postgres
def test_integers_into_wider_and_numeric_columns(pgwh_dsn: str) -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "a": pa.array([1, 255, None], pa.uint8()),
            "b": pa.array([2**32 - 1, 0, 7], pa.uint32()),
            "c": pa.array([-(2**63), 2**63 - 1, None], pa.int64()),
        }
    )
    rows = load(pgwh_dsn, "a int2, b int8, c numeric(20,0)", [batch])
    assert rows == [(1, 2**32 - 1, Decimal(-(2**63))), (255, 0, Decimal(2**63 - 1)), (None, 7, None)]


@pytest.mark.postgres
def test_timestamps_in_other_units_convert_exactly(pgwh_dsn: str) -> None:
    seconds = pa.array([0, 1_700_000_000, None], pa.timestamp("s", tz="Europe/Paris"))
    nanos = pa.array([1_000, 1_700_000_000_123_456_000, None], pa.timestamp("ns"))
    batch = pa.RecordBatch.from_pydict(
        {"a": seconds, "b": nanos, "c": pa.array([dt.date(2000, 1, 1)] * 3, pa.date64())}
    )
    rows = load(pgwh_dsn, "a timestamptz, b timestamp, c date", [batch])
    assert rows[1][0] == dt.datetime.fromtimestamp(1_700_000_000, UTC)
    assert rows[1][1] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456)
    assert rows[0][2] == dt.date(2000, 1, 1)


@pytest.mark.postgres
def test_fixed_width_nulls_between_variable_columns(pgwh_dsn: str) -> None:
    """A fixed-width column with NULLs in one batch and none in the next changes the row layout."""
    first = pa.RecordBatch.from_pydict(
        {"a": pa.array([1, None], pa.int64()), "s": ["x", None], "b": pa.array([None, 2.5]), "c": [True, False]}
    )
    second = pa.RecordBatch.from_pydict(
        {"a": pa.array([3, 4], pa.int64()), "s": ["", "y"], "b": pa.array([1.0, 2.0]), "c": [None, True]}
    )
    rows = load(pgwh_dsn, "a int8, s text, b float8, c bool", [first, second])
    assert rows == [(1, "x", None, True), (None, None, 2.5, False), (3, "", 1.0, None), (4, "y", 2.0, True)]


@pytest.mark.postgres
def test_large_batches_are_split(pgwh_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conveyor.warehouse.postgres.binary.CHUNK_BYTES", 4096)
    n = 5000
    batch = pa.RecordBatch.from_pydict({"i": pa.array(range(n), pa.int64()), "s": [f"row {i}" for i in range(n)]})
    encoder = CopyEncoder([PgColumn("i", "int8"), PgColumn("s", "text")], batch.schema)
    assert len(encoder.encode(batch)) > 1
    rows = load(pgwh_dsn, "i int8, s text", [batch])
    assert rows == [(i, f"row {i}") for i in range(n)]


# ---------------------------------------------------------------------------- refused, never approximated


@pytest.mark.parametrize(
    ("column", "arrow_type"),
    [
        (PgColumn("x", "numeric", (10 << 16 | 2) + 4), pa.float64()),  # floats are not exact decimals
        (PgColumn("x", "float4"), pa.float64()),  # would round
        (PgColumn("x", "int4"), pa.string()),
        (PgColumn("x", "timestamp"), pa.timestamp("us", tz="UTC")),  # an instant is not a local time
        (PgColumn("x", "uuid"), pa.string()),
        (PgColumn("x", "text"), pa.int64()),
        (PgColumn("x", "_int4", element_name="int4", element_oid=23), pa.int32()),
        (PgColumn("x", "_int4", element_name="int4", element_oid=23), pa.list_(pa.float64())),
        (PgColumn("x", "point"), pa.string()),
    ],
)
def test_inexact_pairs_are_refused_before_reading(column: PgColumn, arrow_type: pa.DataType) -> None:
    with pytest.raises(EncodeError, match='column "x"'):
        field_encoder(column, arrow_type)


def encode_one(column: PgColumn, array: pa.Array) -> None:
    CopyEncoder([column], pa.schema([("x", array.type)])).encode(pa.RecordBatch.from_arrays([array], names=["x"]))


@pytest.mark.parametrize(
    ("column", "array", "message"),
    [
        (PgColumn("x", "numeric", (5 << 16 | 2) + 4), pa.array([Decimal("1234.5")], pa.decimal128(10, 2)), "x"),
        (PgColumn("x", "numeric", (5 << 16 | 1) + 4), pa.array([Decimal("1.25")], pa.decimal128(5, 2)), "x"),
        (PgColumn("x", "int2"), pa.array([70000], pa.int32()), "x"),
        (PgColumn("x", "timestamp"), pa.array([1_500], pa.timestamp("ns")), "x"),
        (PgColumn("x", "time"), pa.array([1_500], pa.time64("ns")), "x"),
        (PgColumn("x", "date"), pa.array([-2_500_000], pa.date32()), "outside the range"),
        (
            PgColumn("x", "interval"),
            pa.array([pa.MonthDayNano([0, 0, 1])], pa.month_day_nano_interval()),
            "nanoseconds",
        ),
    ],
)
def test_values_that_would_change_are_errors(column: PgColumn, array: pa.Array, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_one(column, array)


def test_missing_column_is_named() -> None:
    with pytest.raises(EncodeError, match='column "y" is missing'):
        CopyEncoder([PgColumn("y", "int8")], pa.schema([("x", pa.int64())]))


def test_fixed_width_columns_come_first() -> None:
    schema = pa.schema([("s", pa.string()), ("i", pa.int64()), ("j", pa.json_()), ("d", pa.date32())])
    columns = [PgColumn("s", "text"), PgColumn("i", "int8"), PgColumn("j", "jsonb"), PgColumn("d", "date")]
    assert CopyEncoder(columns, schema).copy_columns == ["i", "d", "s", "j"]
