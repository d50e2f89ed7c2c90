"""The DuckDB warehouse: atomic publish, abort, kept schemas, constraints, DDL and comments."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor import api
from conveyor.design.models import TableDesign
from conveyor.errors import WarehouseError
from conveyor.warehouse.duckdb.build import DuckDBBuild
from conveyor.warehouse.duckdb.warehouse import DuckDBWarehouse


def design(**fields: Any) -> TableDesign:
    return TableDesign.model_validate(fields)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def in_worker(function: Callable[[], Any]) -> Any:
    """Run build steps on a worker thread, as the build orchestrator does."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function).result()


# ------------------------------------------------------------------------ atomic publish

T1 = design(name="s.t1", kind="ctas")
T2 = design(name="s.t2", kind="ctas", columns=[{"name": "i", "type": "bigint", "not_null": True}])
V = design(name="m.v", kind="view")
T3 = design(name="m.t3", kind="ctas")

READ = (
    "SELECT (SELECT count(*) FROM s.t1), (SELECT count(*) FROM s.t2), (SELECT n FROM m.v), "
    "(SELECT count(*) FROM m.t3), (SELECT count(*) FROM duckdb_tables() WHERE NOT internal) "
    "+ (SELECT count(*) FROM duckdb_views() WHERE NOT internal AND schema_name = 'm')"
)

READER = """
import json, sys, os, duckdb
path, stop, query = sys.argv[1], sys.argv[2], sys.argv[3]
seen, bad, reads = set(), [], 0
while not os.path.exists(stop) or reads == 0:
    try:
        con = duckdb.connect(path, read_only=True)
        try:
            row = con.execute(query).fetchone()
        finally:
            con.close()
        reads += 1
        if len(set(row[:4])) != 1 or row[4] != 4:
            bad.append(list(row))
        seen.add(row[0])
    except Exception as exc:
        bad.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"reads": reads, "bad": bad[:5], "versions": sorted(seen)}))
"""


def publish_version(warehouse: DuckDBWarehouse, rows: int) -> None:
    """Every relation of this build has exactly ``rows`` rows (the view counts them)."""

    def steps() -> None:
        build = warehouse.begin(["m", "s"], run_id=f"v{rows}")
        try:
            build.create_table(T1, f"SELECT range AS i FROM range({rows})")
            build.create_table(T2, "SELECT i FROM s.t1")
            build.create_view(V, "SELECT count(*) AS n FROM s.t1")
            build.create_table(T3, "SELECT * FROM s.t2")
        except BaseException:
            build.abort()
            raise
        build.publish()

    in_worker(steps)


@pytest.mark.slow
def test_readers_never_see_a_missing_relation_or_a_mix(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse("dev", str(tmp_path / "w.duckdb"))
    base = 200_000
    publish_version(warehouse, base)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse.path), str(stop), READ], stdout=subprocess.PIPE, text=True
    )
    thread_result: dict[str, Any] = {"reads": 0, "bad": [], "versions": set()}

    def read_in_thread() -> None:
        while not stop.exists() or thread_result["reads"] == 0:
            try:
                con = duckdb.connect(str(warehouse.path), read_only=True)
                try:
                    row = con.execute(READ).fetchone()
                finally:
                    con.close()
            except Exception as exc:
                thread_result["bad"].append(f"{type(exc).__name__}: {exc}")
                continue
            thread_result["reads"] += 1
            thread_result["versions"].add(row[0])
            if len(set(row[:4])) != 1 or row[4] != 4:
                thread_result["bad"].append(row)

    thread = threading.Thread(target=read_in_thread)
    thread.start()
    try:
        time.sleep(0.3)
        for version in range(1, 6):
            publish_version(warehouse, base + version)
            time.sleep(0.15)
    finally:
        stop.touch()
        thread.join(timeout=60)
        out, _ = reader.communicate(timeout=60)
    seen = json.loads(out)
    assert thread_result["bad"] == []
    assert seen["bad"] == []
    assert thread_result["reads"] > 10 and seen["reads"] > 10
    assert len(thread_result["versions"]) >= 2 and len(seen["versions"]) >= 2  # they did read across publishes
    assert thread_result["versions"] <= {base + v for v in range(6)}
    con = duckdb.connect(str(warehouse.path), read_only=True)
    assert con.execute(READ).fetchone() == (base + 5,) * 4 + (4,)
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".w.duckdb.lock", "stop", "w.duckdb", "w.duckdb.previous"]


def test_aborted_build_leaves_the_published_file_byte_identical(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse("dev", str(tmp_path / "w.duckdb"))
    publish_version(warehouse, 10)
    publish_version(warehouse, 11)
    published, previous = sha256(warehouse.path), sha256(tmp_path / "w.duckdb.previous")

    def aborted() -> None:
        build = warehouse.begin(["m", "s"], run_id="bad")
        build.create_table(T1, "SELECT range AS i FROM range(99)")
        assert build.staging.exists()
        build.abort()

    in_worker(aborted)
    assert sha256(warehouse.path) == published
    assert sha256(tmp_path / "w.duckdb.previous") == previous
    assert not list(tmp_path.glob("*building*"))
    publish_version(warehouse, 12)  # the lock was released
    assert warehouse.relations() == {"s.t1": "table", "s.t2": "table", "m.v": "view", "m.t3": "table"}


def test_a_failing_relation_aborts_through_the_pipeline(make_project: Callable[..., Path]) -> None:
    root = make_project()
    assert api.run(api.open_project(root)).ok
    published = sha256(root / "warehouse.duckdb")
    # binds (the preflight passes it), then fails on its first row
    (root / "schemas/mart/customer_totals.sql").write_text(
        "SELECT c.id AS customer_id, c.name, CAST('x' || c.name AS INTEGER) AS total FROM shop.customers AS c\n"
    )
    outcome = api.load(api.open_project(root))
    assert not outcome.ok and outcome.build is not None and not outcome.build.published
    assert outcome.build.with_status("failed") == ["mart.customer_totals"]
    assert sorted(outcome.build.with_status("skipped")) == ["mart.report", "mart.top_customers"]
    assert sha256(root / "warehouse.duckdb") == published


def test_a_second_build_is_refused_while_one_runs(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse("dev", str(tmp_path / "w.duckdb"))
    first = warehouse.begin(["s"], run_id="one")
    try:
        with pytest.raises(WarehouseError, match="another load"):
            warehouse.begin(["s"], run_id="two")
        assert first.staging.exists()
    finally:
        first.abort()
    assert not first.staging.exists()


CRASHING_BUILD = """
import os, signal, sys
from conveyor.design.models import TableDesign
from conveyor.warehouse.duckdb.warehouse import DuckDBWarehouse
build = DuckDBWarehouse("dev", sys.argv[1]).begin(["s"], run_id="crash")
build.create_table(TableDesign(name="s.t1", kind="ctas"), "SELECT range AS i FROM range(1000)")
print(build.staging, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_leftovers_of_a_crashed_build_are_removed(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse("dev", str(tmp_path / "w.duckdb"))
    publish_version(warehouse, 3)
    published = sha256(warehouse.path)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_BUILD, str(warehouse.path)], capture_output=True, text=True, check=False
    )
    assert crashed.returncode == -9, crashed.stderr
    leftover = Path(crashed.stdout.strip())
    assert leftover.exists() and leftover.parent == tmp_path
    assert sha256(warehouse.path) == published
    publish_version(warehouse, 4)  # the kernel released the dead build's lock
    assert not leftover.exists() and not Path(f"{leftover}.wal").exists()
    assert not list(tmp_path.glob("*building*"))


# ---------------------------------------------------------------------------- kept schemas


def test_loading_one_schema_keeps_the_others(
    make_project: Callable[..., Path], digest: Callable[[Path], dict[str, str]]
) -> None:
    root = make_project()
    assert api.run(api.open_project(root)).ok
    before = digest(root / "warehouse.duckdb")
    con = sqlite3.connect(root / "upstream.db")
    con.execute("INSERT INTO products VALUES (103, 'Neu', 1)")
    con.commit()
    con.close()
    project = api.open_project(root)
    assert api.extract_tables(project, ["shop.products"]).ok
    outcome = api.load(project, ["shop.products"])  # rebuilds schema shop only
    assert outcome.ok and outcome.build is not None
    assert sorted(outcome.build.status) == ["shop.customers", "shop.orders", "shop.products"]
    after = digest(root / "warehouse.duckdb")
    assert set(after) == set(before)
    for name in ("mart.customer_totals", "mart.top_customers", "mart.report"):
        assert after[name] == before[name], name  # kept: same rows
    assert after["shop.products"] != before["shop.products"]
    wh = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        kinds = dict(
            wh.execute(
                "SELECT table_name, 'table' FROM duckdb_tables() WHERE schema_name = 'mart' "
                "UNION ALL SELECT view_name, 'view' FROM duckdb_views() WHERE schema_name = 'mart'"
            ).fetchall()
        )
        assert kinds == {"customer_totals": "table", "top_customers": "table", "report": "view"}
        assert wh.execute("SELECT count(*) FROM shop.products").fetchone() == (4,)
    finally:
        wh.close()


def _comments(path: Path) -> dict[str, str | None]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT schema_name || '.' || table_name, comment FROM duckdb_tables() "
            "UNION ALL SELECT schema_name || '.' || view_name, comment FROM duckdb_views() WHERE NOT internal "
            "UNION ALL SELECT schema_name || '.' || table_name || '.' || column_name, comment FROM duckdb_columns() "
            "WHERE comment IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def test_descriptions_become_comments(project_dir: Path) -> None:
    assert api.run(api.open_project(project_dir)).ok
    comments = _comments(project_dir / "warehouse.duckdb")
    assert comments["shop.customers"] == "People who buy things"
    assert comments["shop.customers.name"] == "Full name"
    assert comments["mart.customer_totals"] == "Order totals per customer"
    assert comments["mart.report"] == "What the report shows"
    assert comments["shop.orders"] is None


def test_kept_schemas_keep_their_comments(project_dir: Path) -> None:
    assert api.run(api.open_project(project_dir)).ok
    before = _comments(project_dir / "warehouse.duckdb")
    assert api.load(api.open_project(project_dir), ["shop"]).ok
    after = _comments(project_dir / "warehouse.duckdb")
    assert after["mart.customer_totals"] == "Order totals per customer"
    assert after == before


def test_publish_from_the_building_thread_with_a_kept_view(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse("dev", str(tmp_path / "w.duckdb"))
    publish_version(warehouse, 5)
    build = warehouse.begin(["s"], run_id="same-thread")  # keeps schema m, which holds the view m.v
    build.create_table(T1, "SELECT range AS i FROM range(7)")  # untyped: counts with SELECT ... fetchone()
    build.publish()
    con = duckdb.connect(str(warehouse.path), read_only=True)
    assert con.execute("SELECT n FROM m.v").fetchone() == (7,)
    con.close()


# ---------------------------------------------------------------------- constraints, DDL


def _build(tmp_path: Path) -> DuckDBBuild:
    return DuckDBWarehouse("dev", str(tmp_path / "w.duckdb")).begin(["s"], run_id="c")


def test_duplicate_primary_keys_are_reported_with_five_examples(tmp_path: Path) -> None:
    build = _build(tmp_path)
    try:
        table = design(name="s.d", kind="ctas", constraints={"primary_key": ["k"], "unique": [["u"]]})
        # k: 0..6 each 3 times (7 duplicated values), u unique; one row with a NULL key, which a
        # primary key forbids (the NULL is not a duplicate, but it is a not_null violation)
        build.create_table(table, "SELECT range % 7 AS k, range AS u FROM range(21) UNION ALL SELECT NULL, 99")
        violations = build.check(table)
    finally:
        build.abort()
    assert [(v.constraint, v.columns, v.count) for v in violations] == [
        ("not_null", ("k",), 1),
        ("primary_key", ("k",), 7),
    ]
    violation = violations[1]
    assert violation.examples == ("(0)", "(1)", "(2)", "(3)", "(4)")
    assert violation.describe() == "s.d: primary_key (k) has 7 duplicate value(s), e.g. (0), (1), (2), (3), (4)"


def test_unique_and_natural_keys_are_checked(tmp_path: Path) -> None:
    build = _build(tmp_path)
    try:
        table = design(
            name="s.d", kind="ctas", constraints={"unique": [["a", "b"]], "natural_key": ["c"], "primary_key": ["id"]}
        )
        build.create_table(
            table,
            "SELECT * FROM (VALUES (1, 1, 'x', 'p'), (2, 1, 'x', 'q'), (3, 2, NULL, 'q'), (4, 2, NULL, 'r')) "
            "AS v(id, a, b, c)",
        )
        found = {(v.constraint, v.columns): (v.count, v.examples) for v in build.check(table)}
    finally:
        build.abort()
    assert found == {("unique", ("a", "b")): (1, ("(1, 'x')",)), ("natural_key", ("c",)): (1, ("('q')",))}


def test_not_null_and_keys_are_declared_in_ddl(tmp_path: Path) -> None:
    build = _build(tmp_path)
    table = design(
        name="s.n",
        kind="ctas",
        columns=[
            {"name": "id", "type": "bigint"},
            {"name": "must", "type": "text", "not_null": True},
            {"name": "may", "type": "decimal(10,2)"},
        ],
        constraints={"primary_key": ["id"]},
    )
    try:
        assert build.create_table(table, "SELECT 1 AS id, 'x' AS must, NULL AS may") == 1
        nullable = dict(
            build.con.execute("SELECT column_name, is_nullable FROM duckdb_columns() WHERE table_name = 'n'").fetchall()
        )
        types = dict(
            build.con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'n'").fetchall()
        )
        bad = design(name="s.bad", kind="ctas", columns=[{"name": "must", "type": "text", "not_null": True}])
        with pytest.raises(Exception, match="NOT NULL"):
            build.create_table(bad, "SELECT NULL::TEXT AS must")
    finally:
        build.abort()
    assert nullable == {"id": False, "must": False, "may": True}
    assert types == {"id": "BIGINT", "must": "VARCHAR", "may": "DECIMAL(10,2)"}


def test_not_null_of_an_untyped_ctas_is_checked(tmp_path: Path) -> None:
    build = _build(tmp_path)
    table = design(name="s.u", kind="ctas", columns=[{"name": "must", "not_null": True}, {"name": "other"}])
    try:
        build.create_table(table, "SELECT NULL::INTEGER AS must, 1 AS other")
        violations = build.check(table)
    finally:
        build.abort()
    assert [(v.constraint, v.columns, v.count) for v in violations] == [("not_null", ("must",), 1)]


def test_design_columns_must_match_the_query(tmp_path: Path) -> None:
    build = _build(tmp_path)
    table = design(name="s.c", kind="ctas", columns=[{"name": "a"}, {"name": "b"}])
    try:
        with pytest.raises(Exception, match=r"produces columns \(b, a\) but the design lists \(a, b\)"):
            build.create_table(table, "SELECT 1 AS b, 2 AS a")
    finally:
        build.abort()
