"""MySQLSource against the real MariaDB service: types, zero dates, errors, splits."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from conveyor.config.secrets import mask_dsn
from conveyor.design.types import SqlType, parse_type
from conveyor.errors import ExtractError
from conveyor.sources.base import ReadRequest
from conveyor.sources.mysql import MySQLSource
from conveyor.sources.partition import range_filters

pytestmark = pytest.mark.mysql

Run = Callable[..., list[tuple[Any, ...]]]

ALL_TYPES = """
CREATE TABLE everything (
    id int PRIMARY KEY,
    ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned,
    mi mediumint, mu mediumint unsigned, i int, iu int unsigned, bi bigint, bu bigint unsigned,
    flag tinyint(1), boolish bool,
    d_max decimal(65,30), d_38 decimal(38,10), d_small decimal(12,2),
    f float, db double,
    c char(5), vc varchar(20), tx text, lt longtext,
    d date, dt datetime, dt6 datetime(6), ts timestamp(6) NULL, tm time(6), y year,
    j json,
    bl blob, bn binary(4), vb varbinary(8), bt bit(10),
    e enum('small', 'ünï 😀'), st set('a', 'b', 'c')
) CHARACTER SET utf8mb4
"""

COLUMN_COUNT = 35


# filters mark parameters with the source's placeholder (it inlines them as literals)
P = MySQLSource.PLACEHOLDER


def columns_of(source: MySQLSource, db: str, table: str) -> tuple[tuple[str, SqlType], ...]:
    return tuple((c.name, c.type) for c in source.describe(db, table).columns)


def read_all(source: MySQLSource, request: ReadRequest) -> pa.Table:
    batches = list(source.read(request))
    for batch in batches:
        assert batch.schema == request.arrow_schema
    return pa.Table.from_batches(batches, schema=request.arrow_schema)


def as_driver(value: object, field: pa.Field) -> object:
    """An Arrow value in the form pymysql returns for the same column."""
    if value is None:
        return None
    if pa.types.is_timestamp(field.type) and field.type.tz:
        return value.astimezone(UTC).replace(tzinfo=None)  # type: ignore[attr-defined]
    if pa.types.is_time(field.type):
        return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond)  # type: ignore[attr-defined]
    if pa.types.is_boolean(field.type):
        return int(value)  # type: ignore[call-overload]
    return value


@pytest.fixture
def everything(my: Run) -> None:
    my(ALL_TYPES)
    my(
        "INSERT INTO everything VALUES (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,"
        " -9223372036854775808, 18446744073709551615, 1, 0,"
        " 99999999999999999999999999999999999.999999999999999999999999999999,"
        " -9999999999999999999999999999.9999999999, -0.01,"
        " 3.5, -1.7976931348623157e308,"
        " 'ab', '', 'x😀é中', REPEAT('long ', 5000),"
        " '1000-01-01', '1969-12-31 23:59:59', '2024-02-29 12:34:56.000001',"
        " '1970-01-01 00:00:01.5', '23:59:59.999999', 1901,"
        ' \'{"a": "ü😀", "n": [1, 2.5, null]}\','
        " x'00ff10', x'01', x'', b'1000000001', 'ünï 😀', 'a,c')"
    )
    my(
        "INSERT INTO everything VALUES (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0,"
        " 9223372036854775807, 0, 0, 1,"
        " -99999999999999999999999999999999999.999999999999999999999999999999, 0.0000000001, 9999999999.99,"
        " -3.5, 2.2250738585072014e-308,"
        " 'abcde', 'twenty characters!!!', '', NULL,"
        " '9999-12-31', '9999-12-31 23:59:59', '1000-01-01 00:00:00.000000',"
        " '2038-01-19 03:14:07.999999', '00:00:00', 2155,"
        " '[]', '', x'00000000', x'00ff', b'0', 'small', '')"
    )
    # a timestamp written from another session time zone: stored and read back as UTC
    my("SET time_zone = '+05:30'")
    my("INSERT INTO everything (id, ts) VALUES (3, '2024-03-10 02:30:00.123456')")
    my("SET time_zone = '+00:00'")
    my("INSERT INTO everything (id) VALUES (4)")


def test_every_type_matches_the_driver(my_db: str, my_dsn: str, my: Run, everything: None) -> None:
    with MySQLSource("up", my_dsn) as source:
        request = ReadRequest(my_db, "everything", columns_of(source, my_db, "everything"), order_by=("id",))
        table = read_all(source, request)
    assert table.num_rows == 4 and len(request.columns) == COLUMN_COUNT
    expected = my("SELECT * FROM everything ORDER BY id")
    for index, (name, _) in enumerate(request.columns):
        field = table.schema.field(name)
        got = [as_driver(v, field) for v in table.column(name).to_pylist()]
        want = [row[index] for row in expected]
        if name == "f":  # pymysql widens the float's shortest text; compare as float32
            want = pa.array(want, pa.float32()).to_pylist()
        assert all(
            (isinstance(w, float) and math.isnan(w) and math.isnan(g)) or w == g  # type: ignore[arg-type]
            for w, g in zip(want, got, strict=True)
        ), (name, want, got)
    types = {f.name: f.type for f in table.schema}
    assert types["bu"] == pa.uint64() and table.column("bu").to_pylist()[0] == 18446744073709551615
    assert types["flag"] == pa.bool_() and types["boolish"] == pa.bool_()
    assert types["d_max"] == pa.decimal256(65, 30) and types["d_38"] == pa.decimal128(38, 10)
    assert types["ts"] == pa.timestamp("us", tz="UTC") and types["dt6"] == pa.timestamp("us")
    assert types["j"] == pa.json_() and types["mu"] == pa.uint32() and types["y"] == pa.int16()
    assert table.column("ts").to_pylist()[2].isoformat() == "2024-03-09T21:00:00.123456+00:00"
    assert table.column("vc").to_pylist()[:2] == ["", "twenty characters!!!"]
    assert table.column("tx").to_pylist()[0] == "x😀é中"
    assert table.column("bn").to_pylist()[0] == b"\x01\x00\x00\x00"  # binary(n) is padded with zero bytes
    assert table.to_pylist()[3] == {name: (4 if name == "id" else None) for name, _ in request.columns}


def test_describe_reflects_types_keys_and_estimate(my_db: str, my_dsn: str, my: Run) -> None:
    my(
        "CREATE TABLE k (a int NOT NULL, b varchar(10) NOT NULL, c decimal(9,3), d char(2), "
        "PRIMARY KEY (b, a), UNIQUE KEY one (d), UNIQUE KEY two (c, d)) ENGINE=InnoDB"
    )
    my("INSERT INTO k VALUES (1, 'x', 1.5, 'aa'), (2, 'y', NULL, NULL)")
    my("ANALYZE TABLE k")
    with MySQLSource("up", my_dsn) as source:
        info = source.describe(my_db, "k")
        tables = source.list_tables()
    assert [(c.name, str(c.type), c.native_type, c.not_null) for c in info.columns] == [
        ("a", "integer", "int(11)", True),
        ("b", "text", "varchar(10)", True),
        ("c", "decimal(9,3)", "decimal(9,3)", False),
        ("d", "text", "char(2)", False),
    ]
    assert info.primary_key == ("b", "a")
    assert info.unique == (("d",), ("c", "d"))
    assert info.row_estimate == 2
    assert (my_db, "k") in tables
    assert all(schema not in ("mysql", "sys", "performance_schema", "information_schema") for schema, _ in tables)


def test_batches_respect_batch_rows(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE many (id int PRIMARY KEY, s varchar(40))")
    my("INSERT INTO many SELECT seq, md5(seq) FROM seq_1_to_1000" if _is_mariadb(my) else _recursive_insert())
    with MySQLSource("up", my_dsn) as source:
        request = ReadRequest(my_db, "many", columns_of(source, my_db, "many"), batch_rows=128, order_by=("id",))
        sizes = [b.num_rows for b in source.read(request)]
        ids = read_all(source, request).column("id").to_pylist()
    assert sizes == [128] * 7 + [104]
    assert ids == list(range(1, 1001))


def _is_mariadb(my: Run) -> bool:
    return "mariadb" in str(my("SELECT VERSION()")[0][0]).lower()


def _recursive_insert() -> str:
    return (
        "INSERT INTO many WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000) "
        "SELECT n, md5(n) FROM g"
    )


def test_where_params_order_and_text_override(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE p (id int, name varchar(10), amount decimal(10,2), at datetime)")
    my("INSERT INTO p VALUES (1, 'o''k%', 1.50, '2024-01-01'), (2, 'b', 2.25, '2024-01-02'), (3, 'c', NULL, NULL)")
    with MySQLSource("up", my_dsn) as source:
        request = ReadRequest(
            my_db,
            "p",
            (("amount", parse_type("text")), ("id", parse_type("bigint")), ("name", parse_type("text"))),
            where=f"name <> {P} AND id < {P}",
            params=("o'k%", 10),
            order_by=("id",),
        )
        table = read_all(source, request)
    assert table.to_pylist() == [{"amount": "2.25", "id": 2, "name": "b"}, {"amount": None, "id": 3, "name": "c"}]


def test_missing_table_and_unmapped_type(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE places (id int, pos point)")
    my("INSERT INTO places VALUES (1, POINT(1, 2))")
    with MySQLSource("up", my_dsn) as source:
        with pytest.raises(ExtractError) as caught:
            source.describe(my_db, "place")
        assert f'table "{my_db}.place" does not exist in source "up"' in str(caught.value)
        assert f"{my_db}.places" in str(caught.value)
        pos = source.describe(my_db, "places").columns[1]
        assert pos.type is None and pos.text_form is not None and "WKT" in pos.text_form
        with pytest.raises(ExtractError) as caught:
            list(source.read(ReadRequest(my_db, "places", (("pos", parse_type("double")),))))
        message = str(caught.value)
        assert '"pos"' in message and f"{my_db}.places" in message and '"point"' in message
        assert "text" in message and "skipped: true" in message
        raw = read_all(source, ReadRequest(my_db, "places", (("pos", parse_type("bytes")),)))
        text = read_all(source, ReadRequest(my_db, "places", (("pos", parse_type("text")),)))
    assert raw.column("pos").to_pylist()[0] == my("SELECT pos FROM places")[0][0]
    assert text.column("pos").to_pylist() == ["POINT(1 2)"]


def test_zero_dates_read_as_null_with_a_warning(
    my_db: str, my_dsn: str, my: Run, caplog: pytest.LogCaptureFixture
) -> None:
    my("SET SESSION sql_mode = ''")
    my("CREATE TABLE z (id int, d date, dt datetime, ts timestamp NULL)")
    my(
        "INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'), "
        "(2, '2024-00-10', '2024-05-00 10:00:00', '2024-01-01 00:00:00'), (3, '2024-01-02', NULL, NULL)"
    )
    with MySQLSource("up", my_dsn) as source, caplog.at_level(logging.WARNING, logger="conveyor.sources"):
        table = read_all(source, ReadRequest(my_db, "z", columns_of(source, my_db, "z"), order_by=("id",)))
    assert table.column("d").to_pylist()[:2] == [None, None]
    assert str(table.column("d").to_pylist()[2]) == "2024-01-02"
    assert table.column("dt").to_pylist() == [None, None, None]
    assert table.column("ts").to_pylist()[0] is None
    messages = [r.getMessage() for r in caplog.records if r.name == "conveyor.sources"]
    assert any('"d"' in m and f"{my_db}.z" in m and "2 zero date" in m for m in messages), messages
    assert any('"dt"' in m and "2 zero date" in m for m in messages), messages
    assert any('"ts"' in m and "1 zero date" in m for m in messages), messages


def test_boolean_other_than_zero_or_one_raises(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE flags (id int, flag bool)")
    my("INSERT INTO flags VALUES (1, 1), (2, 0), (3, 2)")
    with MySQLSource("up", my_dsn) as source:
        with pytest.raises(ExtractError, match="holds the value 2") as caught:
            list(source.read(ReadRequest(my_db, "flags", columns_of(source, my_db, "flags"))))
        assert '"flag"' in str(caught.value)
        as_int = read_all(source, ReadRequest(my_db, "flags", (("flag", parse_type("tinyint")),)))
    assert as_int.column("flag").to_pylist() == [1, 0, 2]


def test_time_outside_a_day_raises(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE durations (t time(3))")
    my("INSERT INTO durations VALUES ('12:00:00.5'), ('-01:30:00.250')")
    with MySQLSource("up", my_dsn) as source:
        with pytest.raises(ExtractError, match=r"-1:30:00\.250000"):
            list(source.read(ReadRequest(my_db, "durations", columns_of(source, my_db, "durations"))))
        text = read_all(source, ReadRequest(my_db, "durations", (("t", parse_type("text")),)))
    assert text.column("t").to_pylist() == ["12:00:00.500", "-01:30:00.250"]


def test_decimal_override_that_loses_digits_raises(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE d (x decimal(20,6), u bigint unsigned)")
    my("INSERT INTO d VALUES (1.123456, 18446744073709551615)")
    with MySQLSource("up", my_dsn) as source:
        with pytest.raises(ExtractError, match=r"1\.123456"):
            list(source.read(ReadRequest(my_db, "d", (("x", parse_type("decimal(20,2)")),))))
        with pytest.raises(ExtractError, match="18446744073709551615"):
            list(source.read(ReadRequest(my_db, "d", (("u", parse_type("bigint")),))))
        wide = read_all(source, ReadRequest(my_db, "d", (("u", parse_type("decimal(20,0)")),)))
    assert wide.column("u").to_pylist()[0] == 18446744073709551615


def test_connection_errors_mask_the_password(my_db: str) -> None:
    for dsn in (
        f"mysql://root:s3cr3t-pass@127.0.0.1:3306/{my_db}",  # wrong password
        "mysql://root:s3cr3t-pass@127.0.0.1:1/db",  # nothing listens there
        "mysql://root@127.0.0.1:3306/conveyor_no_such_db",
    ):
        with MySQLSource("up", dsn, connect_timeout=3) as source, pytest.raises(ExtractError) as caught:
            source.list_tables()
        text = str(caught.value)
        assert "s3cr3t" not in text and "s3cr3t" not in repr(caught.value)
        assert mask_dsn(dsn) in text and 'source "up"' in text
    assert "conveyor_no_such_db" in text


def test_failed_sql_is_named(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE f (x int)")
    with MySQLSource("up", my_dsn) as source, pytest.raises(ExtractError) as caught:
        list(source.read(ReadRequest(my_db, "f", (("x", parse_type("integer")),), where="no_such_column = 1")))
    assert "no_such_column" in str(caught.value) and "1054" in str(caught.value)


def test_splits_cover_every_row_once(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE sp (id int PRIMARY KEY, k int)")
    rows = [(i, None if i % 10 == 0 else i % 97) for i in range(1, 5001) if i % 7]
    with MySQLSource("up", my_dsn) as source:
        with source.conn.cursor() as cur:
            cur.executemany(f"INSERT INTO `{my_db}`.sp VALUES (%s, %s)", rows)
        assert source.min_max(my_db, "sp", "id") == (1, 5000)
        assert source.min_max(my_db, "sp", "k", where=f"id < {P}", params=(100,)) == (0, 96)
        cuts = source.quantiles(my_db, "sp", "k", 4)
        assert len(cuts) == 3 and cuts == sorted(cuts)
        ids: list[int] = []
        for where, params in range_filters("`k`", cuts, P):
            request = ReadRequest(my_db, "sp", (("id", parse_type("integer")),), where=where, params=params)
            ids += read_all(source, request).column("id").to_pylist()
    assert sorted(ids) == [r[0] for r in rows]


def test_quote_uses_backticks() -> None:
    source = MySQLSource("up", "mysql://root@127.0.0.1:3306/x")
    assert source.quote("we`ird") == "`we``ird`"


def test_dates_read_as_numbers_keep_every_day(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE days (id int PRIMARY KEY, d date)")
    values = ["0000-01-01", "0001-12-31", "1582-10-04", "1900-02-28", "1969-12-31", "1970-01-01"]
    values += ["2000-02-29", "2024-02-29", "2100-03-01", "9999-12-31", None]
    params = [v for i, d in enumerate(values) for v in (i, d)]
    my("INSERT INTO days VALUES " + ", ".join(["(%s, %s)"] * len(values)), params)
    with MySQLSource("up", my_dsn) as source:
        table = read_all(source, ReadRequest(my_db, "days", columns_of(source, my_db, "days"), order_by=("id",)))
    # year 0 is no Python date: compare with Arrow's own parse of the text
    assert table.column("d").combine_chunks().equals(pa.array(values, pa.string()).cast(pa.date32()))


def test_a_date_that_does_not_exist_raises(my_db: str, my_dsn: str, my: Run) -> None:
    my("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
    my("CREATE TABLE bad (id int, d date)")
    my("INSERT INTO bad VALUES (1, '2023-02-29')")
    with MySQLSource("up", my_dsn) as source, pytest.raises(ExtractError, match="2023-02-29"):
        read_all(source, ReadRequest(my_db, "bad", columns_of(source, my_db, "bad")))


def test_decimals_read_natively_stay_exact(my_db: str, my_dsn: str, my: Run) -> None:
    my("CREATE TABLE money (id int PRIMARY KEY, a decimal(28,10), b decimal(18,0), c decimal(15,2), w decimal(30,2))")
    rows = [
        (1, "999999999999999999.9999999999", "-999999999999999999", "-9999999999999.99", "9" * 28 + ".99"),
        (2, "-0.0000000001", "0", "0.01", "-0.01"),
        (3, None, None, None, None),
    ]
    my("INSERT INTO money VALUES " + ", ".join(["(%s, %s, %s, %s, %s)"] * 3), [v for r in rows for v in r])
    with MySQLSource("up", my_dsn) as source:
        request = ReadRequest(my_db, "money", columns_of(source, my_db, "money"), order_by=("id",))
        assert "CAST(`a` AS CHAR)" not in source.build_sql(request, source._plan(request))
        assert "CAST(`w` AS CHAR)" in source.build_sql(request, source._plan(request))  # 28 digits before the point
        table = read_all(source, request)
    for name, index in (("a", 1), ("b", 2), ("c", 3), ("w", 4)):
        want = [None if r[index] is None else Decimal(r[index]) for r in rows]
        assert table.column(name).to_pylist() == want, name


def test_a_slow_reader_holds_the_driver_to_its_read_ahead(my_db: str, my_dsn: str, my: Run) -> None:
    """connectorx queues batches without bound; through the relay it gets only the read-ahead
    (without it, this read grows by about the table's 160 MB)."""
    import resource
    import time

    my("CREATE TABLE wide (id int PRIMARY KEY, t text)")
    my("INSERT INTO wide SELECT seq, REPEAT('x', 2000) FROM seq_1_to_80000")  # 160 MB of text
    columns = (("id", parse_type("integer")), ("t", parse_type("text")))
    request = ReadRequest(my_db, "wide", columns, batch_rows=1_024, buffer_bytes=4 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = 0
    with MySQLSource("up", my_dsn) as source:
        for batch in source.read(request):
            rows += batch.num_rows
            time.sleep(0.03)  # the server could send the whole table meanwhile
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert rows == 80_000
    assert grown_mib < 90, grown_mib
