"""The PostgreSQL warehouse end to end: exact values, publish by schema swap, failures, grants, views."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor import api
from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.errors import LoadError, WarehouseError
from conveyor.lake.lake import Lake
from conveyor.lake.manifest import Manifest, PartFile
from conveyor.lake.store import LocalStore
from conveyor.warehouse import open_warehouse
from conveyor.warehouse.postgres.warehouse import PostgresWarehouse

from .conftest import CUSTOMERS, ORDERS, make_upstream, write_files

pytestmark = pytest.mark.postgres

Sql = Callable[..., list[tuple[Any, ...]]]
RELATIONS = {
    "shop.customers": "table",
    "shop.orders": "table",
    "mart.customer_totals": "table",
    "mart.top_customers": "table",
    "mart.report": "view",
}


def design(**fields: Any) -> TableDesign:
    return TableDesign.model_validate(fields)


def in_worker(function: Callable[[], Any]) -> Any:
    """Run build steps on a worker thread, as the build orchestrator does."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function).result()


def run(root: Path, env: str = "pg") -> api.Outcome:
    return api.run(api.open_project(root), env=env)


def schemas(sql: Sql) -> set[str]:
    return {r[0] for r in sql("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'")}


def normalize(value: Any, kind: str, *, parsed_json: bool = False) -> Any:
    """One comparable form for values from psycopg (which parses jsonb), DuckDB and pyarrow."""
    if value is None:
        return None
    if kind == "json":
        return value if parsed_json else json.loads(value)
    if kind == "uuid":
        return value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=value)
    if kind == "bytes":
        return bytes(value)
    if kind == "timestamptz":
        assert value.tzinfo is not None
        return value.astimezone(UTC)
    return value


CUSTOMER_KINDS = ["int", "text", "text", "bool", "timestamptz", "decimal", "uuid", "json", "bytes", "int"]
ORDER_KINDS = ["int", "int", "decimal", "timestamptz", "text", "int"]


def lake_rows(root: Path, table: str, kinds: list[str]) -> list[tuple[Any, ...]]:
    manifest = Lake(root / "lake").latest("shop", f"shop.{table}")
    assert manifest is not None
    rows = pa.concat_tables([pq.read_table(p) for p in manifest.paths()]).to_pylist()
    return sorted(tuple(normalize(v, k) for v, k in zip(r.values(), kinds, strict=True)) for r in rows)


def pg_rows(sql: Sql, query: str, kinds: list[str]) -> list[tuple[Any, ...]]:
    return sorted(tuple(normalize(v, k, parsed_json=True) for v, k in zip(r, kinds, strict=True)) for r in sql(query))


# ---------------------------------------------------------------------------- end to end


def test_run_loads_every_value_exactly(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    outcome = run(root)
    assert outcome.ok, outcome.build.errors if outcome.build else outcome.notes
    assert outcome.build is not None and outcome.build.rows["shop.customers"] == len(CUSTOMERS)
    assert outcome.warehouse and "127.0.0.1:5432" in outcome.warehouse

    warehouse = api.open_environment(api.open_project(root), "pg")
    assert warehouse.relations() == RELATIONS

    # source tables hold exactly what the lake's Parquet files hold
    customers = pg_rows(sql, "SELECT * FROM shop.customers", CUSTOMER_KINDS)
    assert customers == lake_rows(root, "customers", CUSTOMER_KINDS)
    assert pg_rows(sql, "SELECT * FROM shop.orders", ORDER_KINDS) == lake_rows(root, "orders", ORDER_KINDS)
    by_id = {row[0]: row for row in customers}
    assert by_id[1][5] == Decimal("1234567890.12") and by_id[5][5] == Decimal("-9999999999.99")
    assert by_id[2][2] == "" and by_id[3][2] is None  # empty string is not NULL
    assert by_id[4][1] == "\\N" and by_id[4][2] == "NULL"  # nor are the strings that spell it
    assert by_id[2][4] == datetime(2000, 1, 1, 4, 59, 59, 999999, tzinfo=UTC)
    assert by_id[5][4] == datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert by_id[1][6] == uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert by_id[4][7] == {"nested": {"deep": [None, True, "ünï"]}}
    assert by_id[1][8] == b"\x00\x01\\x41\xff" and by_id[2][8] == b"" and by_id[3][8] is None
    assert [by_id[i][3] for i in (1, 2, 4)] == [True, False, None]
    types: dict[str, str] = dict(
        sql("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'customers'")
    )
    assert types["profile"] == "jsonb" and types["token"] == "uuid" and types["balance"] == "numeric"

    # transformations agree with a DuckDB build of the same lake
    assert api.load(api.open_project(root), env="local").ok
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as local:
        for query in (
            "SELECT * FROM mart.customer_totals",
            "SELECT * FROM mart.top_customers",
            "SELECT name, total, version FROM mart.report",
        ):
            assert sorted(sql(query)) == sorted(local.execute(query).fetchall()), query
        local_customers = local.execute("SELECT * FROM shop.customers").fetchall()
    assert sorted(tuple(normalize(v, k) for v, k in zip(r, CUSTOMER_KINDS, strict=True)) for r in local_customers) == (
        customers
    )
    # the view keeps its ORDER BY; comments come from the designs
    assert [r[1] for r in sql("SELECT name, total FROM mart.report")] == sorted(
        (r[0] for r in sql("SELECT total FROM mart.top_customers")), reverse=True
    )
    assert sql("SELECT obj_description('shop.customers'::regclass, 'pg_class')") == [("People who buy things",)]
    assert sql("SELECT col_description('shop.customers'::regclass, 2)") == [("Full name, as written",)]
    assert sql("SELECT obj_description('mart.report'::regclass, 'pg_class')") == [("What the report shows",)]
    assert sql("SELECT col_description('mart.customer_totals'::regclass, 3)") == [("Sum of order amounts",)]


def test_publish_keeps_a_backup_schema_unless_told_not_to(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    assert run(root).ok
    assert "mart$backup" not in schemas(sql)  # nothing to back up the first time
    make_upstream(root / "upstream.db", version=2)
    assert run(root).ok
    assert {"mart$backup", "shop$backup"} <= schemas(sql)
    assert sql('SELECT DISTINCT version FROM "mart$backup".customer_totals') == [(1,)]
    assert sql("SELECT DISTINCT version FROM mart.customer_totals") == [(2,)]
    assert not {s for s in schemas(sql) if s.endswith("$staging")}

    no_backup = pg_project(pg_extra="    keep_backup: false\n", version=3)
    assert run(no_backup).ok
    assert not {s for s in schemas(sql) if "$" in s}
    assert sql("SELECT DISTINCT version FROM shop.orders") == [(3,)]
    warehouse = api.open_environment(api.open_project(no_backup), "pg")
    assert warehouse.relations() == RELATIONS  # $backup and $staging are never listed


def test_a_failing_relation_publishes_nothing(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    assert run(root).ok
    before = sql("SELECT * FROM mart.customer_totals ORDER BY 1")
    make_upstream(root / "upstream.db", version=2)
    # binds (the preflight passes it), then fails in PostgreSQL on its first row
    failing = (
        "SELECT customer_id, CAST('no_such_column' || name AS integer) AS name, total, version FROM customer_totals\n"
    )
    write_files(root, {"schemas/mart/top_customers.sql": failing})
    outcome = run(root)
    assert outcome.build is not None and not outcome.build.published
    error = outcome.build.errors["mart.top_customers"]
    assert 'building "mart.top_customers" failed in PostgreSQL' in error and "no_such_column" in error
    assert outcome.build.status["mart.report"] == "skipped"
    # the published warehouse is the previous one, whole
    assert sql("SELECT * FROM mart.customer_totals ORDER BY 1") == before
    assert sql("SELECT DISTINCT version FROM shop.customers") == [(1,)]
    warehouse = api.open_environment(api.open_project(root), "pg")
    assert warehouse.relations() == RELATIONS
    # the build is suspended for --resume: its staging stays, marked with its run
    assert {s for s in schemas(sql) if "$" in s} == {"mart$staging", "shop$staging"}
    assert sql('SELECT DISTINCT version FROM "shop$staging".customers') == [(2,)]
    with pytest.raises(WarehouseError, match="no longer there to resume"):
        warehouse.begin(["mart", "shop"], run_id="r2", resume_from="some-other-run")

    def resume() -> None:
        build = warehouse.begin(["mart", "shop"], run_id="r3", resume_from=outcome.run_id)
        build.drop("mart.top_customers")  # not there: nothing happens
        build.create_table(design(name="mart.top_customers", kind="ctas"), "SELECT 1 AS x")
        build.drop("mart.top_customers")
        build.drop("shop.customers")
        build.abort()

    in_worker(resume)
    assert not {s for s in schemas(sql) if "$" in s}  # abort throws it away
    # a failed build's leftovers go with the next load
    assert not run(root).build.published  # type: ignore[union-attr]
    write_files(
        root, {"schemas/mart/top_customers.sql": "SELECT customer_id, name, total, version FROM customer_totals"}
    )
    assert run(root).ok
    assert not {s for s in schemas(sql) if s.endswith("$staging")}
    assert sql("SELECT DISTINCT version FROM mart.report") == [(2,)]


def test_grants_from_the_environment(pg_project: Callable[..., Path], sql: Sql, roles: Callable[[str], str]) -> None:
    reader, writer = roles("reader"), roles("writer")
    root = pg_project(pg_extra=f"    readers: [{reader}]\n    writers: [{writer}]\n")
    assert run(root).ok
    assert run(root).ok  # and again after a swap: the new schemas get the grants too

    def can(role: str, check: str, *args: str) -> bool:
        return bool(sql(f"SELECT {check}(%s, {', '.join(['%s'] * len(args))})", (role, *args))[0][0])

    for schema in ("shop", "mart"):
        assert can(reader, "has_schema_privilege", schema, "USAGE")
        assert not can(reader, "has_schema_privilege", schema, "CREATE")
        assert can(writer, "has_schema_privilege", schema, "USAGE")
        assert can(writer, "has_schema_privilege", schema, "CREATE")
    for relation in ("shop.customers", "mart.customer_totals", "mart.report"):
        assert can(reader, "has_table_privilege", relation, "SELECT")
        assert not can(reader, "has_table_privilege", relation, "INSERT")
        assert can(writer, "has_table_privilege", relation, "INSERT")
        assert can(writer, "has_table_privilege", relation, "DELETE")


def test_a_missing_role_fails_before_anything_is_built(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project(pg_extra="    readers: [conveyor_no_such_role_x]\n")
    with pytest.raises(WarehouseError, match=r"conveyor_no_such_role_x.*do not exist"):
        run(root)
    assert not {s for s in schemas(sql) if s in ("shop", "mart") or "$" in s}


# ---------------------------------------------------------------------------- views in other schemas


def test_views_in_other_schemas_follow_the_new_version(
    pg_project: Callable[..., Path], sql: Sql, roles: Callable[[str], str]
) -> None:
    reader = roles("reader")
    root = pg_project(pg_extra="    keep_backup: false\n")
    assert run(root).ok
    sql("CREATE SCHEMA other")
    sql(
        "CREATE VIEW other.v WITH (security_barrier) AS "
        "SELECT max(version) AS version, count(*) AS n FROM mart.customer_totals"
    )
    sql("CREATE VIEW other.v2 AS SELECT version, n, (SELECT count(*) FROM shop.orders) AS orders FROM other.v")
    sql("COMMENT ON VIEW other.v IS 'totals, summarized'")
    sql("COMMENT ON COLUMN other.v.n IS 'how many'")
    sql(f'GRANT SELECT ON other.v TO "{reader}"')
    assert sql("SELECT * FROM other.v2") == [(1, 5, len(ORDERS))]

    make_upstream(root / "upstream.db", version=2, extra_orders=3)
    assert run(root).ok
    assert sql("SELECT * FROM other.v2") == [(2, 5, len(ORDERS) + 3)]
    assert sql("SELECT obj_description('other.v'::regclass, 'pg_class')") == [("totals, summarized",)]
    assert sql("SELECT col_description('other.v'::regclass, 2)") == [("how many",)]
    assert sql("SELECT has_table_privilege(%s, 'other.v', 'SELECT')", (reader,)) == [(True,)]
    assert sql("SELECT reloptions FROM pg_class WHERE oid = 'other.v'::regclass") == [(["security_barrier=true"],)]
    # they read the published schema, not a backup
    definition = sql("SELECT pg_get_viewdef('other.v'::regclass)")[0][0]
    assert "mart.customer_totals" in definition and "$backup" not in definition


def test_a_view_that_no_longer_binds_stops_the_publish(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    assert run(root).ok
    sql("CREATE SCHEMA other")
    sql("CREATE VIEW other.v AS SELECT customer_id, orders FROM mart.customer_totals")
    totals = """\
SELECT c.id AS customer_id, c.name, coalesce(sum(o.amount), 0) AS total, max(c.version) AS version
FROM shop.customers AS c LEFT JOIN shop.orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.name
"""
    design_yaml = """\
name: mart.customer_totals
kind: ctas
"""
    write_files(root, {"schemas/mart/customer_totals.sql": totals, "schemas/mart/customer_totals.yaml": design_yaml})
    make_upstream(root / "upstream.db", version=2)
    with pytest.raises(WarehouseError, match=r'"other\.v" reads a rebuilt relation'):
        run(root)
    assert sql("SELECT DISTINCT version FROM mart.customer_totals") == [(1,)]
    assert sql("SELECT count(*) FROM other.v") == [(5,)]
    assert not {s for s in schemas(sql) if "$" in s}


def test_materialized_views_and_foreign_keys_are_refused(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    assert run(root).ok
    sql("CREATE SCHEMA other")
    sql("CREATE MATERIALIZED VIEW other.m AS SELECT count(*) FROM mart.customer_totals")
    with pytest.raises(WarehouseError, match=r'materialized view "other\.m"'):
        run(root)
    sql("DROP MATERIALIZED VIEW other.m")
    sql("ALTER TABLE shop.customers ADD PRIMARY KEY (id)")
    sql("CREATE TABLE other.notes (customer_id bigint REFERENCES shop.customers (id))")
    with pytest.raises(WarehouseError, match="foreign key"):
        run(root)
    sql("DROP TABLE other.notes")
    assert run(root).ok


# ---------------------------------------------------------------------------- builds, locks, aborts


def warehouse_for(dsn: str, **config: Any) -> PostgresWarehouse:
    env = EnvironmentConfig(type="postgres", dsn=dsn, **config)
    found = open_warehouse("postgres", "pg", dsn, config=env)
    assert isinstance(found, PostgresWarehouse)
    return found


T = design(name="mart.t", kind="ctas", columns=[{"name": "i", "type": "bigint"}, {"name": "s", "type": "text"}])


def test_a_second_load_into_the_same_schemas_is_refused(pgwh_dsn: str, sql: Sql) -> None:
    warehouse = warehouse_for(pgwh_dsn)
    first = warehouse.begin(["mart", "shop"], run_id="one")
    try:
        with pytest.raises(WarehouseError, match=r'another load into schema "mart".*backend pid'):
            warehouse.begin(["mart"], run_id="two")
        other = warehouse.begin(["elsewhere"], run_id="three")  # other schemas are free
        other.abort()
    finally:
        first.abort()
    again = warehouse.begin(["mart"], run_id="four")
    again.abort()
    assert not {s for s in schemas(sql) if "$" in s}


def test_leftovers_of_a_crashed_build_are_dropped(pgwh_dsn: str, sql: Sql) -> None:
    sql('CREATE SCHEMA "mart$staging"')
    sql('CREATE TABLE "mart$staging".leftover (i int)')
    build = warehouse_for(pgwh_dsn).begin(["mart"], run_id="r")
    try:
        assert sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'mart$staging'") == [(0,)]
        assert build.staged("mart.t") == "mart$staging.t" and build.staged("other.t") == "other.t"
    finally:
        build.abort()


def test_abort_leaves_the_published_warehouse_alone(pgwh_dsn: str, sql: Sql) -> None:
    warehouse = warehouse_for(pgwh_dsn)

    def publish(rows: int) -> None:
        build = warehouse.begin(["mart"], run_id=f"v{rows}")
        build.create_table(T, f"SELECT i, 'row ' || i AS s FROM generate_series(1, {rows}) AS i")
        build.publish()

    in_worker(lambda: publish(3))

    def abandon() -> None:
        build = warehouse.begin(["mart"], run_id="x")
        build.create_table(T, "SELECT 1::bigint AS i, 'x' AS s")
        build.abort()
        build.abort()  # twice is harmless

    in_worker(abandon)
    assert sql("SELECT count(*) FROM mart.t") == [(3,)]
    assert schemas(sql) & {"mart$staging"} == set()
    with pytest.raises(WarehouseError, match="keep_schemas"):
        warehouse.begin(["mart"], run_id="y", keep_schemas=False)


def test_checks_report_duplicates_with_examples(pgwh_dsn: str) -> None:
    keyed = design(
        name="mart.k",
        kind="ctas",
        constraints={"primary_key": ["a"], "unique": [["a", "b"]], "natural_key": ["b"]},
    )

    def steps() -> list[Any]:
        build = warehouse_for(pgwh_dsn).begin(["mart"], run_id="c")
        try:
            build.create_table(
                keyed,
                "SELECT * FROM (VALUES (1, 'x'), (1, 'x'), (2, NULL), (2, NULL), (3, 'y'), (NULL, 'y')) AS v(a, b)",
            )
            return build.check(keyed)
        finally:
            build.abort()

    violations = {v.constraint: v for v in in_worker(steps)}
    assert violations["primary_key"].count == 2 and violations["primary_key"].examples == ("(1)", "(2)")
    assert violations["unique"].examples == ("(1, 'x')",)  # (2, NULL) has a NULL: not a duplicate
    assert violations["natural_key"].examples == ("('x')", "('y')")
    assert "primary_key (a) has 2 duplicate value(s)" in violations["primary_key"].describe()


def test_sql_errors_name_the_relation(pgwh_dsn: str) -> None:
    typed = design(name="mart.t", kind="ctas", columns=[{"name": "i", "type": "bigint"}, {"name": "j", "type": "text"}])

    def steps() -> None:
        build = warehouse_for(pgwh_dsn).begin(["mart"], run_id="e")
        try:
            with pytest.raises(LoadError, match=r"produces columns \(i, k\) but the design lists \(i, j\)"):
                build.create_table(typed, "SELECT 1 AS i, 'x' AS k")
            with pytest.raises(LoadError, match=r'building "mart.t" failed in PostgreSQL: division by zero'):
                build.create_table(typed, "SELECT 1 / 0 AS i, 'x' AS j")
            with pytest.raises(LoadError, match=r'"mart.v" failed in PostgreSQL: relation "nowhere.x" does not exist'):
                build.create_view(design(name="mart.v", kind="view"), "SELECT * FROM nowhere.x")
            assert build.create_table(typed, "SELECT 1 AS i, 'x' AS j") == 1  # the connection is still usable
        finally:
            build.abort()

    in_worker(steps)


# ---------------------------------------------------------------------------- loading source tables


def write_parts(folder: Path, tables: list[pa.Table]) -> Manifest:
    folder.mkdir(parents=True)
    files = []
    for index, table in enumerate(tables):
        name = f"part-{index:05d}.parquet"
        pq.write_table(table, folder / name, row_group_size=1000)
        files.append(PartFile(name, table.num_rows, (folder / name).stat().st_size, "0" * 64))
    return Manifest(
        "x1",
        "shop",
        "main.t",
        "shop.t",
        files,
        tables[0].schema,
        "",
        "",
        "",
        store=LocalStore(folder.parent),
        key=folder.name,
    )


SOURCE = design(
    name="shop.t",
    columns=[
        {"name": "id", "type": "bigint", "not_null": True},
        {"name": "label", "type": "text"},
        {"name": "amount", "type": "decimal(12,3)"},
        {"name": "tags", "type": "text[]"},
    ],
)


def test_load_table_reads_every_part_and_conforms_types(pgwh_dsn: str, sql: Sql, tmp_path: Path) -> None:
    n = 25_000
    first = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "label": [f"label {i}" if i % 7 else None for i in range(n)],
            "amount": pa.array([Decimal(i).scaleb(-3) for i in range(n)], pa.decimal128(12, 3)),
            "tags": pa.array([["a", str(i)] if i % 3 else [] for i in range(n)], pa.list_(pa.string())),
            "ignored": pa.array(range(n)),
        }
    )
    # a second part written with other (compatible) Arrow types
    second = pa.table(
        {
            "id": pa.array([n, n + 1], pa.int32()),
            "label": pa.array(["", "ü"], pa.large_string()),
            "amount": pa.array([Decimal("-1.5"), None], pa.decimal128(5, 1)),
            "tags": pa.array([None, ["x"]], pa.list_(pa.string())),
            "ignored": pa.array([0, 0]),
        }
    )
    manifest = write_parts(tmp_path / "extract", [first, second])

    def steps() -> int:
        build = warehouse_for(pgwh_dsn).begin(["shop"], run_id="l")
        rows = build.load_table(SOURCE, manifest)
        build.publish()
        return rows

    assert in_worker(steps) == n + 2
    assert sql("SELECT count(*), count(label), sum(amount), sum(cardinality(tags)) FROM shop.t") == [
        (n + 2, n - (n + 6) // 7 + 2, Decimal(sum(range(n))).scaleb(-3) - Decimal("1.5"), 2 * (n - (n + 2) // 3) + 1)
    ]
    assert sql("SELECT label, amount, tags FROM shop.t WHERE id >= %s ORDER BY id", (n,)) == [
        ("", Decimal("-1.500"), None),
        ("ü", None, ["x"]),
    ]


def test_load_errors_name_the_table_and_column(pgwh_dsn: str, tmp_path: Path) -> None:
    nulls = pa.table(
        {"id": pa.array([1, None], pa.int64()), "label": ["a", "b"], "amount": [None, None], "tags": [None, None]}
    )
    nulls = nulls.cast(
        pa.schema(
            [
                ("id", pa.int64()),
                ("label", pa.string()),
                ("amount", pa.decimal128(12, 3)),
                ("tags", pa.list_(pa.string())),
            ]
        )
    )
    too_wide = nulls.set_column(2, "amount", pa.array([Decimal("123456789012.5"), None], pa.decimal128(20, 1)))
    floats = nulls.set_column(2, "amount", pa.array([1.5, None], pa.float64()))
    missing = nulls.drop_columns(["tags"])

    def attempt(table: pa.Table, folder: str) -> str:
        manifest = write_parts(tmp_path / folder, [table])

        def steps() -> str:
            build = warehouse_for(pgwh_dsn).begin(["shop"], run_id=folder)
            try:
                build.load_table(SOURCE, manifest)
            except LoadError as exc:
                return exc.render()
            finally:
                build.abort()
            return ""

        return str(in_worker(steps))

    assert 'loading "shop.t" failed in PostgreSQL' in (error := attempt(nulls, "a")) and '"id"' in error
    assert "null value" in error
    assert 'column "amount"' in attempt(too_wide, "b")
    assert "cannot be loaded into PostgreSQL exactly" in (error := attempt(floats, "c")) and "double" in error
    assert "lacks column(s) tags" in attempt(missing, "d")


def test_incremental_extracts_replace_rows_by_primary_key(pgwh_dsn: str, sql: Sql, tmp_path: Path) -> None:
    schema = pa.schema(
        [("id", pa.int64()), ("label", pa.string()), ("amount", pa.decimal128(12, 3)), ("tags", pa.list_(pa.string()))]
    )
    full = pa.table(
        {"id": [1, 2, 3], "label": ["a", "b", "c"], "amount": [None] * 3, "tags": [None] * 3}, schema=schema
    )
    changes = pa.table(
        {"id": [2, 4], "label": ["B", "d"], "amount": [None] * 2, "tags": [["new"], None]}, schema=schema
    )
    chain = [write_parts(tmp_path / "full", [full]), write_parts(tmp_path / "incremental", [changes])]
    keyed = SOURCE.model_copy(update={"constraints": SOURCE.constraints.model_copy(update={"primary_key": ["id"]})})

    def steps(table_design: TableDesign) -> int:
        build = warehouse_for(pgwh_dsn).begin(["shop"], run_id="m")
        rows = build.load_chain(table_design, chain)
        build.publish()
        return rows

    assert in_worker(lambda: steps(keyed)) == 5
    assert sql("SELECT id, label, tags FROM shop.t ORDER BY id") == [
        (1, "a", None),
        (2, "B", ["new"]),
        (3, "c", None),
        (4, "d", None),
    ]
    assert in_worker(lambda: steps(SOURCE)) == 5  # without a key the changes are appended
    assert sql("SELECT count(*), count(DISTINCT id) FROM shop.t") == [(5, 4)]


# ---------------------------------------------------------------------------- connections and secrets


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://conveyor:s3cr3t-pw@127.0.0.1:1/warehouse",
        "host=127.0.0.1 port=1 user=conveyor password=s3cr3t-pw dbname=warehouse",
        "postgresql://conveyor_no_such_user:s3cr3t-pw@127.0.0.1:5432/postgres?sslmode=disable",
        "postgresql://postgres@127.0.0.1:5432/postgres?password=s3cr3t-pw&options=-c%20no_such_setting%3D1",
    ],
)
def test_connection_failures_never_show_the_password(dsn: str) -> None:
    warehouse = warehouse_for(dsn)
    for attempt in (warehouse.relations, lambda: warehouse.begin(["mart"], run_id="r")):
        with pytest.raises(WarehouseError) as caught:
            attempt()
        text = caught.value.render()
        assert "s3cr3t-pw" not in text
        assert 'cannot connect to the PostgreSQL warehouse "pg"' in text and "***" in text
    assert "s3cr3t-pw" not in warehouse.describe()


def test_describe_shows_where_not_the_secret() -> None:
    warehouse = PostgresWarehouse("prod", "postgresql://etl:s3cr3t-pw@db.example.com:6543/dwh")
    assert warehouse.describe() == "PostgreSQL etl@db.example.com:6543/dwh"
    assert PostgresWarehouse("p", "postgresql+psycopg://u@h/d").describe() == "PostgreSQL u@h:5432/d"
