"""PostgresSource against the real PostgreSQL service: types, errors, snapshots, splits."""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from conveyor.config.secrets import mask_dsn
from conveyor.design.types import SqlType, parse_type
from conveyor.errors import ExtractError, TransientError
from conveyor.sources.base import ReadRequest
from conveyor.sources.partition import range_filters
from conveyor.sources.postgres import PostgresSource

pytestmark = pytest.mark.postgres

ALL_TYPES = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'ünïcode 😀');
CREATE TABLE everything (
    id integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    n_max numeric(38,10), n_small numeric(12,2), n_wide numeric(60,20), n_free numeric,
    f4 real, f8 double precision,
    c char(5), vc varchar(20), t text,
    b boolean,
    d date, tm time, ts timestamp, tstz timestamptz(6),
    iv interval,
    u uuid, j json, jb jsonb, by bytea,
    m mood,
    a_int integer[], a_text text[], a_num numeric(10,3)[], a_tstz timestamptz[], a_uuid uuid[], a_mood mood[]
);
"""

ROWS = [
    """(1, -32768, -2147483648, -9223372036854775808,
        9999999999999999999999999999.9999999999, -0.01,
        -1234567890123456789012345678901234567890.12345678901234567890, 12345678901234567890123456789.123456789,
        3.4028235e38, -1.7976931348623157e308,
        'ab', '', 'x😀é中',
        true,
        '1900-02-28', '00:00:00', '1969-12-31 23:59:59.999999', '2024-03-10 02:30:00.123456+05:30',
        '1 year 2 mons 3 days 04:05:06.789012',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1,  "a": "ü😀"}',
        '{"b": 1,  "a": "ü😀", "n": null}', '\\x00ff10',
        'ünïcode 😀',
        '{1,NULL,3}', '{"a",NULL,"","😀"}', '{1.5,NULL,-2.125}',
        '{"2000-01-01 00:00:00-08","1970-01-01 00:00:00+00",NULL}',
        '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}', '{sad,NULL}')""",
    """(2, 32767, 2147483647, 9223372036854775807,
        -9999999999999999999999999999.9999999999, 0,
        99999999999999999999999999999999999999.99999999999999999999, -0.000000001,
        'NaN', 'Infinity',
        'abcde', 'twenty characters!!!', repeat('long ', 2000),
        false,
        '9999-12-31', '23:59:59.999999', '0001-01-01 00:00:00', '1901-12-13 20:45:52.000001-03',
        '-2 days -00:00:00.000001',
        '00000000-0000-0000-0000-000000000000', '[]', '[]', '\\x',
        'happy',
        '{}', '{}', '{}', '{}', '{}', '{}')""",
    "(3, " + ", ".join(["NULL"] * 29) + ")",
]


# filters mark parameters with the source's placeholder (it inlines them as literals)
P = PostgresSource.PLACEHOLDER


def columns_of(source: PostgresSource, table: str) -> tuple[tuple[str, SqlType], ...]:
    return tuple((c.name, c.type) for c in source.describe("public", table).columns)


def read_all(source: PostgresSource, request: ReadRequest, **kwargs: Any) -> pa.Table:
    batches = list(source.read(request, **kwargs))
    for batch in batches:
        assert batch.schema == request.arrow_schema
        assert batch.schema.metadata is None
    return pa.Table.from_batches(batches, schema=request.arrow_schema)


def same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return left == right


@pytest.fixture
def everything(pg: psycopg.Connection[Any]) -> None:
    pg.execute(ALL_TYPES)
    pg.execute(("INSERT INTO everything VALUES " + ", ".join(ROWS)).encode())


def test_interval_has_no_mapping_but_reads_as_text(pg_dsn: str, pg: psycopg.Connection[Any], everything: None) -> None:
    # parquet cannot store arrow intervals: describe names the column, a text override reads it exactly
    with PostgresSource("up", pg_dsn) as source:
        iv = {c.name: c for c in source.describe("public", "everything").columns}["iv"]
        assert iv.type is None and iv.text_form == "PostgreSQL's text form of interval"
        with pytest.raises(ExtractError, match=r'column "iv" \(interval\)'):
            list(source.read(ReadRequest("public", "everything", (("iv", parse_type("integer")),))))
        request = ReadRequest("public", "everything", (("iv", parse_type("text")),), order_by=("id",))
        got = read_all(source, request).column("iv").to_pylist()
    assert got == [r[0] for r in pg.execute("SELECT iv::text FROM everything ORDER BY id").fetchall()]


def test_every_type_matches_the_driver(pg_dsn: str, pg: psycopg.Connection[Any], everything: None) -> None:
    pg.execute("ALTER TABLE everything DROP COLUMN iv")  # no mapping: see the test above
    with PostgresSource("up", pg_dsn) as source:
        request = ReadRequest("public", "everything", columns_of(source, "everything"), order_by=("id",))
        table = read_all(source, request)
    assert table.num_rows == 3
    plain = [c for c, _ in request.columns if c not in ("j", "jb", "m", "a_mood")]
    expected = pg.execute(f"SELECT {', '.join(plain)} FROM everything ORDER BY id".encode()).fetchall()
    for index, name in enumerate(plain):
        got = table.column(name).to_pylist()
        want = [row[index] for row in expected]
        if name == "f4":  # psycopg widens the float4's shortest text; compare as float32
            want = pa.array(want, pa.float32()).to_pylist()
        assert all(same(w, g) for w, g in zip(want, got, strict=True)), (name, want, got)
    # values psycopg parses into other Python types: compare their exact text forms
    texts = pg.execute("SELECT j::text, jb::text, m::text, a_mood::text[] FROM everything ORDER BY id").fetchall()
    assert table.column("j").to_pylist() == [r[0] for r in texts]
    assert table.column("jb").to_pylist() == [r[1] for r in texts]
    assert table.column("m").to_pylist() == [r[2] for r in texts]
    assert table.column("a_mood").to_pylist() == [r[3] for r in texts]
    # exact types the lake stores
    schema = table.schema
    assert schema.field("n_max").type == pa.decimal128(38, 10)
    assert schema.field("n_wide").type == pa.decimal256(60, 20)
    assert schema.field("n_free").type == pa.decimal128(38, 9)
    assert schema.field("u").type == pa.uuid()
    assert schema.field("jb").type == pa.json_()
    assert schema.field("tstz").type == pa.timestamp("us", tz="UTC")
    assert schema.field("a_num").type == pa.list_(pa.decimal128(10, 3))
    assert table.column("c").to_pylist()[0] == "ab   "  # char(n) keeps its padding
    assert table.column("vc").to_pylist() == ["", "twenty characters!!!", None]
    assert table.column("tstz").to_pylist()[0].isoformat() == "2024-03-09T21:00:00.123456+00:00"


def test_session_time_zone_does_not_change_values(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE tz (ts timestamptz, t timestamp)")
    pg.execute("INSERT INTO tz VALUES ('2024-06-01 12:00:00+02', '2024-06-01 12:00:00')")
    pg.execute(f"ALTER DATABASE {pg_dsn.rsplit('/', 1)[1]} SET TimeZone = 'America/New_York'".encode())
    with PostgresSource("up", pg_dsn) as source:
        request = ReadRequest("public", "tz", (("ts", parse_type("timestamptz")), ("t", parse_type("timestamp"))))
        text_request = ReadRequest("public", "tz", (("ts", parse_type("text")),))
        row = read_all(source, request).to_pylist()[0]
        text = read_all(source, text_request).column("ts").to_pylist()[0]
    assert row["ts"].isoformat() == "2024-06-01T10:00:00+00:00"
    assert row["t"].isoformat() == "2024-06-01T12:00:00"
    assert text == "2024-06-01 10:00:00+00"


def test_batches_respect_batch_rows(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE many AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 1000) g")
    with PostgresSource("up", pg_dsn) as source:
        request = ReadRequest("public", "many", columns_of(source, "many"), batch_rows=128, order_by=("id",))
        sizes = [b.num_rows for b in source.read(request)]
        ids = read_all(source, request).column("id").to_pylist()
    assert sizes == [128] * 7 + [104]
    assert ids == list(range(1, 1001))


def test_where_params_and_projection(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE p (id int, name text, at timestamptz)")
    pg.execute(
        "INSERT INTO p SELECT g, 'n' || g, '2024-01-01'::timestamptz + g * interval '1 hour' "
        "FROM generate_series(1, 50) g"
    )
    from datetime import UTC, datetime

    with PostgresSource("up", pg_dsn) as source:
        request = ReadRequest(
            "public",
            "p",
            (("name", parse_type("text")), ("id", parse_type("bigint"))),
            where=f"at > {P} AND name LIKE {P}",
            params=(datetime(2024, 1, 2, 0, 0, tzinfo=UTC), "n4%"),
            order_by=("id",),
        )
        table = read_all(source, request)
    assert table.column_names == ["name", "id"]
    assert table.column("id").to_pylist() == list(range(40, 50))
    assert table.schema.field("id").type == pa.int64()


def test_describe_reflects_types_keys_and_estimate(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE DOMAIN money2 AS numeric(12,2)")
    pg.execute(
        "CREATE TABLE k (a int NOT NULL, b text NOT NULL, c money2, d varchar(3), e numeric(5,-2), "
        "PRIMARY KEY (b, a), UNIQUE (d), CONSTRAINT two UNIQUE (c, d))"
    )
    pg.execute("CREATE UNIQUE INDEX partial ON k (c) WHERE c > 0")
    pg.execute("INSERT INTO k SELECT g, g::text, g, NULL FROM generate_series(1, 100) g")
    pg.execute("ANALYZE k")
    with PostgresSource("up", pg_dsn) as source:
        info = source.describe("public", "k")
        tables = source.list_tables()
    assert [(c.name, str(c.type), c.native_type, c.not_null) for c in info.columns] == [
        ("a", "integer", "integer", True),
        ("b", "text", "text", True),
        ("c", "decimal(12,2)", "money2", False),
        ("d", "text", "character varying(3)", False),
        ("e", "decimal(7,0)", "numeric(5,-2)", False),
    ]
    assert info.primary_key == ("b", "a")
    assert info.unique == (("d",), ("c", "d"))
    assert info.row_estimate == 100
    assert ("public", "k") in tables
    assert all(schema not in ("pg_catalog", "information_schema") for schema, _ in tables)


def test_missing_table_and_column(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE orders (id int)")
    with PostgresSource("up", pg_dsn) as source:
        with pytest.raises(ExtractError) as caught:
            source.describe("public", "order")
        assert 'table "public.order" does not exist in source "up"' in str(caught.value)
        assert "public.orders" in str(caught.value)
        with pytest.raises(ExtractError, match='column "idd" does not exist'):
            list(source.read(ReadRequest("public", "orders", (("idd", parse_type("int")),))))


@pytest.mark.parametrize(
    ("native", "value"),
    [("point", "(1,2)"), ("money", "12.34"), ("time with time zone", "12:00:00+02"), ("inet", "10.0.0.1")],
)
def test_unmapped_types_error_and_can_be_read_as_text(
    pg_dsn: str, pg: psycopg.Connection[Any], native: str, value: str
) -> None:
    pg.execute(f"CREATE TABLE odd (id int, x {native})".encode())
    pg.execute("INSERT INTO odd VALUES (1, %s)", (value,))
    with PostgresSource("up", pg_dsn) as source:
        x = source.describe("public", "odd").columns[1]
        assert x.type is None and x.text_form is not None and native.split()[0] in x.text_form
        with pytest.raises(ExtractError, match="no exact design type") as caught:
            list(source.read(ReadRequest("public", "odd", (("x", parse_type("double")),))))
        message = str(caught.value)
        assert '"x"' in message and "public.odd" in message and native.split()[0] in message
        assert "text" in message and "skipped: true" in message
        table = read_all(source, ReadRequest("public", "odd", (("x", parse_type("text")),)))
    assert table.column("x").to_pylist() == [pg.execute("SELECT x::text FROM odd").fetchone()[0]]  # type: ignore[index]


def test_unconstrained_numeric_never_rounds(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE nums (id int, n numeric)")
    pg.execute("INSERT INTO nums VALUES (1, 1.5), (2, 0.0000000001), (3, NULL)")
    with PostgresSource("up", pg_dsn) as source:
        default = ReadRequest("public", "nums", columns_of(source, "nums"))
        with pytest.raises(ExtractError) as caught:
            list(source.read(default))
        message = str(caught.value)
        assert '"n"' in message and "public.nums" in message and '"up"' in message
        assert "1E-10" in message or "0.0000000001" in message
        assert "decimal(30,12)" in message and "text" in message
        wide = ReadRequest("public", "nums", (("n", parse_type("decimal(30,12)")),), order_by=("id",))
        assert read_all(source, wide).column("n").to_pylist() == [Decimal("1.5"), Decimal("1E-10"), None]
        text = ReadRequest("public", "nums", (("n", parse_type("text")),), order_by=("id",))
        assert read_all(source, text).column("n").to_pylist() == ["1.5", "0.0000000001", None]
        pg.execute("UPDATE nums SET n = 'NaN' WHERE id = 2")
        with pytest.raises(ExtractError, match="NaN"):
            list(source.read(wide))
        pg.execute("UPDATE nums SET n = 123456789012345678901234567890 WHERE id = 2")
        with pytest.raises(ExtractError, match="overflow"):
            list(source.read(default))


def test_override_that_would_lose_data_raises(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE o (i bigint, n numeric(10,3), f float8)")
    pg.execute("INSERT INTO o VALUES (3000000000, 1.125, 0.1)")
    with PostgresSource("up", pg_dsn) as source:
        with pytest.raises(ExtractError, match="3000000000"):
            list(source.read(ReadRequest("public", "o", (("i", parse_type("integer")),))))
        with pytest.raises(ExtractError, match="lose digits"):
            list(source.read(ReadRequest("public", "o", (("n", parse_type("decimal(10,2)")),))))
        with pytest.raises(ExtractError, match="without changing its values"):
            list(source.read(ReadRequest("public", "o", (("f", parse_type("decimal(10,2)")),))))
        ok = read_all(
            source, ReadRequest("public", "o", (("n", parse_type("decimal(20,5)")), ("i", parse_type("text"))))
        )
    assert ok.to_pylist() == [{"n": Decimal("1.125"), "i": "3000000000"}]


@pytest.mark.parametrize(
    ("native", "value"),
    [("timestamp", "infinity"), ("timestamptz", "-infinity"), ("date", "infinity"), ("date[]", "{-infinity}")],
)
def test_infinite_dates_raise(pg_dsn: str, pg: psycopg.Connection[Any], native: str, value: str) -> None:
    pg.execute(f"CREATE TABLE inf (x {native})".encode())
    pg.execute("INSERT INTO inf VALUES (%s)", (value,))
    with PostgresSource("up", pg_dsn) as source:
        with pytest.raises(ExtractError, match="infinity") as caught:
            list(source.read(ReadRequest("public", "inf", columns_of(source, "inf"))))
        assert '"x"' in str(caught.value)
        text = read_all(source, ReadRequest("public", "inf", (("x", parse_type("text")),)))
    assert "infinity" in text.column("x").to_pylist()[0]


def test_multidimensional_arrays_raise(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE md (x int[])")
    pg.execute("INSERT INTO md VALUES ('{1,2}'), ('{{1,2},{3,4}}')")
    with PostgresSource("up", pg_dsn) as source:
        with pytest.raises(ExtractError, match="2-dimensional"):
            list(source.read(ReadRequest("public", "md", columns_of(source, "md"))))
        text = read_all(source, ReadRequest("public", "md", (("x", parse_type("text")),)))
    assert text.column("x").to_pylist() == ["{1,2}", "{{1,2},{3,4}}"]


def test_connection_errors_mask_the_password(pg_dsn: str) -> None:
    # the service trusts every local connection, so a wrong password cannot be provoked;
    # an unknown database and a closed port carry the password in the DSN all the same
    for dsn in (
        "postgresql://postgres:s3cr3t-pass@127.0.0.1:5432/conveyor_no_such_db",
        "postgresql://postgres:s3cr3t-pass@127.0.0.1:1/postgres",
    ):
        with PostgresSource("up", dsn, connect_timeout=3) as source, pytest.raises(ExtractError) as caught:
            source.list_tables()
        text = str(caught.value)
        assert "s3cr3t-pass" not in text and "s3cr3t" not in repr(caught.value)
        assert mask_dsn(dsn) in text and "***" in text
        assert 'source "up"' in text
    assert "conveyor_no_such_db" in text or "127.0.0.1" in text


def test_mask_dsn() -> None:
    assert mask_dsn("postgresql://u:p%40ss@h:5432/db?sslmode=require") == "postgresql://u:***@h:5432/db?sslmode=require"
    assert mask_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


def test_failed_sql_is_named(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE f (x int)")
    pg.execute("INSERT INTO f VALUES (0)")
    with PostgresSource("up", pg_dsn) as source:
        request = ReadRequest("public", "f", (("x", parse_type("integer")),), where="1 / x = 1")
        with pytest.raises(ExtractError) as caught:
            list(source.read(request))
    assert "division by zero" in str(caught.value)
    assert "1 / x = 1" in str(caught.value)


def test_lost_connection_is_transient(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS s FROM generate_series(1, 300000) g")
    with PostgresSource("up", pg_dsn) as source:
        stream = source.read(ReadRequest("public", "big", columns_of(source, "big"), batch_rows=1000))
        next(stream)
        pg.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY%%'"
        )
        with pytest.raises(TransientError):
            for _ in stream:
                pass


def test_snapshot_hides_later_rows(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE s (id int)")
    pg.execute("INSERT INTO s SELECT generate_series(1, 10)")
    with PostgresSource("up", pg_dsn) as source:
        request = ReadRequest("public", "s", (("id", parse_type("integer")),))
        with source.export_snapshot() as snapshot:
            pg.execute("INSERT INTO s SELECT generate_series(11, 20)")
            pg.execute("DELETE FROM s WHERE id = 1")
            halves = [
                ReadRequest("public", "s", request.columns, where=f"id <= {P}", params=(5,)),
                ReadRequest("public", "s", request.columns, where=f"id > {P}", params=(5,)),
            ]
            seen: list[int] = []
            threads = [
                threading.Thread(
                    target=lambda r=r: seen.extend(read_all(source, r, snapshot=snapshot).column("id").to_pylist())
                )
                for r in halves
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(seen) == list(range(1, 11))
        assert sorted(read_all(source, request).column("id").to_pylist()) == list(range(2, 21))
        with pytest.raises(ExtractError):
            list(source.read(request, snapshot="00000003-0000001B-1"))


def test_splits_cover_every_row_once(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    pg.execute("CREATE TABLE sp (id int, k int)")
    pg.execute(
        "INSERT INTO sp SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 97 END FROM generate_series(1, 20000) g"
    )
    pg.execute("DELETE FROM sp WHERE id % 7 = 0")
    total = pg.execute("SELECT count(*) FROM sp").fetchone()[0]  # type: ignore[index]
    columns = (("id", parse_type("integer")),)
    with PostgresSource("up", pg_dsn) as source:
        assert source.min_max("public", "sp", "id") == (1, 20000)
        assert source.min_max("public", "sp", "k", where=f"id < {P}", params=(100,)) == (0, 96)
        cuts = source.quantiles("public", "sp", "k", 4)
        assert len(cuts) == 3 and cuts == sorted(cuts)
        ids: list[int] = []
        for where, params in range_filters('"k"', cuts, P):
            ids += (
                read_all(source, ReadRequest("public", "sp", columns, where=where, params=params))
                .column("id")
                .to_pylist()
            )
        assert sorted(ids) == sorted(set(ids)) and len(ids) == total
        ranges = source.ctid_ranges("public", "sp", 4)
        assert len(ranges) == 4
        pg.execute("INSERT INTO sp SELECT g, 1 FROM generate_series(20001, 20100) g")  # after the split: still covered
        ids = []
        for where in ranges:
            ids += read_all(source, ReadRequest("public", "sp", columns, where=where)).column("id").to_pylist()
        assert sorted(ids) == sorted(set(ids)) and len(ids) == total + 100


def test_every_char_value_reads_as_postgresql_renders_it(pg_dsn: str, pg: psycopg.Connection[Any]) -> None:
    """The whole range of the one-byte "char" type: '' is the empty string, never a NUL character."""
    pg.execute('CREATE TABLE chars (id int, c "char", cs "char"[])')
    pg.execute(
        """INSERT INTO chars SELECT b, CASE WHEN b = 0 THEN ''::"char"
                  WHEN b < 128 THEN chr(b)::"char"
                  ELSE ('\\' || (b >> 6) || ((b >> 3) & 7) || (b & 7))::"char" END, NULL
           FROM generate_series(0, 255) AS b"""
    )
    pg.execute("""UPDATE chars SET cs = ARRAY[c, ''::"char"] WHERE id % 17 = 0""")
    expected = pg.execute("SELECT c::text, cs::text[] FROM chars ORDER BY id").fetchall()
    assert len({row[0] for row in expected}) == 256  # every byte, distinct
    with PostgresSource("up", pg_dsn) as source:
        request = ReadRequest("public", "chars", columns_of(source, "chars")[1:], order_by=("id",))
        table = read_all(source, request)
    assert list(zip(table.column("c").to_pylist(), table.column("cs").to_pylist(), strict=True)) == expected
    assert not any("\x00" in (value or "") for value in table.column("c").to_pylist())
