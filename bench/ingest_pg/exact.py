"""Exactness of each loader: edge values of every design type Conveyor loads into PostgreSQL.

For each type, a two-column table ``(id integer, v <type>)`` is created with Conveyor's DDL
(``conveyor.warehouse.ddl.create_table``), the edge values are written to a Parquet file
with the Arrow type of the design type (``SqlType.arrow``), and each tool loads that file
(bench/ingest_pg/tools.py). What PostgreSQL then holds is read back with psycopg and
compared with the Arrow values, exactly:

* integers, booleans, text, bytes, uuids: equal values;
* decimals: the same digits and scale (``format(d, "f")``);
* floats: the same bits (NaN, -0.0 and infinities included; ``real`` compared as float32);
* dates: days since 1970-01-01 (``v - date '1970-01-01'``), so BC and far dates need no
  Python ``date``; times and timestamps: microseconds (``extract(epoch ...) * 1e6``);
* json: the server's ``jsonb`` text of the loaded value against the ``jsonb`` text of the
  Arrow string;
* lists: element by element, with the rules above.

Then data that no PostgreSQL value equals (:data:`MUST_REFUSE`: dates and timestamps out of
PostgreSQL's range, nanoseconds, an int64 or a decimal that does not fit the column), where
the right answer is an error and anything stored is a loss.

Verdicts per tool and type: ``exact``; ``refused`` (the load raised: the error, first line);
``LOSSY`` (loaded, but some value differs: the first difference is shown).
"""

from __future__ import annotations

import struct
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]
from tools import TOOLS, connect, load  # noqa: E402 - bench/ingest_pg is on sys.path

D = Decimal
DAY_MIN = -2_440_588  # 4714-11-24 BC, PostgreSQL's first date (julian day 0)
DAY_MAX = 2_147_483_494 - 2_440_588 - 1  # 5874897-12-31, its last
US_MIN = DAY_MIN * 86_400_000_000  # 4714-11-24 00:00:00 BC
US_MAX = 2**63 - 1  # 294247-01-10 04:00:54.775807, Arrow's last (PostgreSQL's is 294276-12-31)
BIG = "9" * 29 + "." + "9" * 9

# exact microseconds (extract(epoch) is a double before PostgreSQL 14); the session runs in UTC
MICROS_OF_DAY = (
    "(extract(hour FROM {x})::bigint * 3600000000 + extract(minute FROM {x})::bigint * 60000000"
    " + extract(microseconds FROM {x})::bigint)"
)
MICROS = "(({x})::date - date '1970-01-01')::numeric * 86400000000 + " + MICROS_OF_DAY.format(x="({x})::time")

CASES: list[tuple[str, list[Any]]] = [
    ("smallint", [-32768, 32767, 0, None]),
    ("integer", [-(2**31), 2**31 - 1, 0, None]),
    ("bigint", [-(2**63), 2**63 - 1, 0, None]),
    ("decimal(15,2)", [D("9999999999999.99"), D("-9999999999999.99"), D("0.01"), D("0.00"), None]),
    ("decimal(38,0)", [D("9" * 38), D("-" + "9" * 38), D("0"), D("1"), None]),
    ("decimal(38,9)", [D(BIG), D("-" + BIG), D("0.000000001"), D("-0.000000001"), D("0E-9"), None]),
    ("decimal(38,38)", [D("0." + "9" * 38), D("-0." + "9" * 38), D("0." + "0" * 37 + "1"), None]),
    ("decimal(76,10)", [D("9" * 66 + "." + "9" * 10), D("-" + "9" * 66 + "." + "9" * 10), D("1E-10"), None]),
    ("real", [float("nan"), float("inf"), float("-inf"), -0.0, 1e-45, 3.4028234663852886e38, 0.1, None]),
    ("double", [float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308, 0.1, None]),
    ("boolean", [True, False, None]),
    ("text", ["", "é漢字😀", "tab\tnl\ncr\rbs\\", "\\N", "NULL", "  trailing  ", "x" * 100_000, None]),
    ("bytes", [b"", b"\x00", bytes(range(256)), b"\\x00", None]),
    ("date", [0, 10_957, -719_162, 2_932_896, DAY_MIN, DAY_MAX, None]),  # days: 1970, 2000, 0001, 9999, limits
    ("time", [0, 86_399_999_999, 45_296_000_001, None]),  # microseconds
    ("timestamp", [0, -1, 946_684_800_000_001, US_MIN, US_MAX, None]),  # microseconds
    ("timestamptz", [0, -1, 946_684_800_000_001, US_MIN, US_MAX, None]),
    ("uuid", [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID("12345678-1234-5678-1234-567812345678"), None]),
    ("json", ['{"b": 1, "a": [1, 2.50, null, "é"]}', '"\\u00e9"', "null", "1e400", "[]", None]),
    ("integer[]", [[1, None, -(2**31)], [], None]),
    ("text[]", [["a", None, "é", ""], ["NULL"], ['a,b"c\\{}'], [], None]),
    ("decimal(15,2)[]", [[D("1.00"), None, D("-9999999999999.99")], [], None]),
    ("timestamptz[]", [[0, US_MAX, None], None]),
]


PG_EPOCH_US = 946_684_800_000_000
# data no PostgreSQL value equals: the right answer is an error, and anything loaded is a loss
MUST_REFUSE: list[tuple[str, str, pa.Array]] = [
    ("date32 -2147472692 days (before 4714 BC)", "date", pa.array([-2_147_472_692], pa.int32()).view(pa.date32())),
    ("date32 2147483647 days (after 5874897)", "date", pa.array([2**31 - 1], pa.int32()).view(pa.date32())),
    (
        "timestamp[us] -2^63 + 946684800000000 - 1 (before 4714 BC)",
        "timestamp",
        pa.array([-(2**63) + PG_EPOCH_US - 1], pa.int64()).view(pa.timestamp("us")),
    ),
    ("timestamp[ns] 1970-01-01 00:00:00.000000001", "timestamp", pa.array([1], pa.int64()).view(pa.timestamp("ns"))),
    ("time64[ns] 00:00:00.000000001", "time", pa.array([1], pa.int64()).view(pa.time64("ns"))),
    ("int64 2^31 into integer", "integer", pa.array([2**31], pa.int64())),
    ("decimal128(38,9) 0.001 into decimal(15,2)", "decimal(15,2)", pa.array([D("0.001")], pa.decimal128(38, 9))),
]


def arrow_column(kind: str, values: list[Any]) -> pa.Array:
    from conveyor.design.types import parse_type

    t = parse_type(kind).arrow
    storage = getattr(t, "storage_type", t)
    if kind == "uuid":
        raw = pa.array([None if v is None else v.bytes for v in values], storage)
        return pa.ExtensionArray.from_storage(t, raw)
    if kind == "json":
        return pa.ExtensionArray.from_storage(t, pa.array(values, storage))
    if pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_timestamp(t):
        return pa.array(values, pa.int32() if pa.types.is_date(t) else pa.int64()).view(t)
    if pa.types.is_list(t) and pa.types.is_timestamp(t.value_type):
        inner = pa.array([x for v in values if v for x in v], pa.int64()).view(t.value_type)
        offsets, position = [], 0
        for v in values:
            offsets.append(position)
            position += len(v or [])
        offsets.append(position)
        mask = pa.array([v is None for v in values])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), inner, t, mask=mask)
    return pa.array(values, t)


def _read_expression(kind: str) -> str:
    if kind == "date":
        return "v - date '1970-01-01'"
    if kind == "time":
        return MICROS_OF_DAY.format(x="v")
    if kind in ("timestamp", "timestamptz"):
        return MICROS.format(x="v")
    if kind == "timestamptz[]":
        return f"(SELECT array_agg({MICROS.format(x='x')} ORDER BY o) FROM unnest(v) WITH ORDINALITY u(x, o))"
    if kind == "json":
        return "v::text"
    return "v"


def _same(kind: str, want: Any, got: Any, con: Any) -> bool:
    if want is None or got is None:
        return want is None and got is None
    if kind.endswith("[]"):
        element = kind[:-2]
        return len(want) == len(got) and all(_same(element, w, g, con) for w, g in zip(want, got, strict=True))
    if kind.startswith("decimal"):
        return isinstance(got, Decimal) and format(want, "f") == format(got, "f")
    if kind == "real":
        return struct.pack("<f", want) == struct.pack("<f", got)
    if kind == "double":
        return struct.pack("<d", want) == struct.pack("<d", got)
    if kind in ("time", "timestamp", "timestamptz"):
        return int(got) == want
    if kind == "uuid":
        return isinstance(got, uuid.UUID) and got.bytes == want.bytes
    if kind == "json":
        return con.execute("SELECT %s::jsonb::text", (want,)).fetchone()[0] == got
    return type(got) is type(want) and got == want


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(dsn: str, tools: list[str], folder: Path | None = None) -> dict[str, dict[str, str]]:
    """{kind: {tool: verdict}} for every case of :data:`CASES`."""
    import psycopg

    from conveyor.design.models import TableDesign
    from conveyor.warehouse import ddl

    folder = folder or Path(tempfile.mkdtemp(prefix="conveyor-exact-"))
    verdicts: dict[str, dict[str, str]] = {}
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE SCHEMA IF NOT EXISTS exact")
        for index, (kind, values) in enumerate(CASES):
            data = pa.table({"id": pa.array(range(len(values)), pa.int32()), "v": arrow_column(kind, values)})
            path = folder / f"case{index}.parquet"
            pq.write_table(data, path)
            design = TableDesign.model_validate(
                {"name": f"exact.t{index}", "columns": [{"name": "id", "type": "integer"}, {"name": "v", "type": kind}]}
            )
            verdicts[kind] = {}
            for tool in tools:
                con.execute(f"DROP TABLE IF EXISTS exact.t{index}")
                con.execute(ddl.create_table(design, "postgres").encode())
                verdicts[kind][tool] = _one(tool, dsn, con, kind, f"exact.t{index}", path, data.schema, values)
            con.execute(f"DROP TABLE IF EXISTS exact.t{index}")
        for index, (label, kind, array) in enumerate(MUST_REFUSE):
            data = pa.table({"id": pa.array([0], pa.int32()), "v": array})
            path = folder / f"refuse{index}.parquet"
            pq.write_table(data, path)
            design = TableDesign.model_validate(
                {"name": f"exact.r{index}", "columns": [{"name": "id", "type": "integer"}, {"name": "v", "type": kind}]}
            )
            verdicts[label] = {}
            for tool in tools:
                con.execute(f"DROP TABLE IF EXISTS exact.r{index}")
                con.execute(ddl.create_table(design, "postgres").encode())
                verdicts[label][tool] = _refused(tool, dsn, con, f"exact.r{index}", path, data.schema)
            con.execute(f"DROP TABLE IF EXISTS exact.r{index}")
        con.execute("DROP SCHEMA IF EXISTS exact CASCADE")
    return verdicts


def _one(tool: str, dsn: str, con: Any, kind: str, table: str, path: Path, schema: pa.Schema, values: list[Any]) -> str:
    loader, _ = connect(tool, dsn)
    try:
        load(tool, loader, table, [path], schema)
    except Exception as exc:  # the verdict is the error
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"refused: {type(exc).__name__}: {message[:110]}"
    finally:
        loader.close()
    try:
        rows = con.execute(f"SELECT id, {_read_expression(kind)} FROM {table} ORDER BY id").fetchall()
    except Exception as exc:
        return f"LOSSY: loaded but cannot be read back: {str(exc).splitlines()[0][:100]}"
    got = {row[0]: row[1] for row in rows}
    if len(rows) != len(values):
        return f"LOSSY: {len(rows)} rows loaded of {len(values)}"
    for i, want in enumerate(values):
        if kind == "timestamptz[]" and want is not None:
            want = list(want)
        if not _same(kind, want, got.get(i), con):
            return f"LOSSY: {_show(want)} -> {_show(got.get(i))}"
    return "exact"


def _refused(tool: str, dsn: str, con: Any, table: str, path: Path, schema: pa.Schema) -> str:
    loader, _ = connect(tool, dsn)
    try:
        load(tool, loader, table, [path], schema)
    except Exception as exc:  # the right answer
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"refused (right): {type(exc).__name__}: {message[:90]}"
    finally:
        loader.close()
    stored = con.execute(f"SELECT v::text FROM {table}").fetchall()
    return f"LOSSY: loaded as {_show([row[0] for row in stored])}"


def markdown(verdicts: dict[str, dict[str, str]], tools: list[str]) -> str:
    lines = ["| design type | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
    for kind, by_tool in verdicts.items():
        cells = [by_tool.get(t, "-").replace("|", "\\|") for t in tools]
        name = f"`{kind}`" if kind in dict(CASES) else kind
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # a quick look: python bench/ingest_pg/exact.py DSN
    print(markdown(check(sys.argv[1], list(TOOLS)), list(TOOLS)))
