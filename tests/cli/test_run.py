"""`conveyor run` end to end on the test project, through the console script."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

pytestmark = pytest.mark.slow  # every test here runs the whole ETL, several times, in subprocesses

EXPECTED_ROWS = {
    "shop.customers": 4,
    "shop.orders": 5,
    "shop.products": 3,
    "mart.customer_totals": 4,
    "mart.top_customers": 3,
    "mart.report": 3,
}


# the view, and the tables whose designs declare nothing to check
UNCHECKED = {"mart.report", "mart.top_customers", "shop.products"}


def row_counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in EXPECTED_ROWS}
    finally:
        con.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Runs:
    root: Path
    default: Any
    quiet: Any
    verbose: Any
    counts: list[dict[str, int]]
    runs: list[dict[str, Any]]
    show_last: dict[str, Any]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, new_project: Callable[..., Path], cli: Callable[..., Any]) -> Runs:
    """Three runs of the same project (default, -q, -v) and what `runs` says about them."""
    root = new_project(tmp_path_factory.mktemp("e2e") / "project")
    default = cli("run", cwd=root)
    counts = [row_counts(root / "warehouse.duckdb")] if default.code == 0 else []
    quiet = cli("-q", "run", cwd=root)
    counts.append(row_counts(root / "warehouse.duckdb"))
    verbose = cli("-v", "run", cwd=root)
    counts.append(row_counts(root / "warehouse.duckdb"))
    listed = cli("runs", "--format", "json", cwd=root)
    shown = cli("runs", "show", "last", "--format", "json", cwd=root)
    return Runs(root, default, quiet, verbose, counts, json.loads(listed.stdout), json.loads(shown.stdout))


def test_run_succeeds_and_reports(runs: Runs) -> None:
    result = runs.default
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "Extracted 3/3 tables, 12 rows" in out
    assert "Built 6/6 relations, 19 rows" in out  # 4 + 5 + 3 loaded, 4 + 3 built, the view has no count
    assert f"Published to DuckDB file {runs.root / 'warehouse.duckdb'}" in out
    assert f"Lake: {runs.root / 'lake'}" in out
    assert re.search(r"Run \S+ succeeded in \d+\.\d s", out)
    assert "Traceback" not in result.stderr


def test_run_wrote_lake_and_warehouse(runs: Runs) -> None:
    tables = sorted(p.name for p in (runs.root / "lake" / "data" / "shop").iterdir())
    assert tables == ["shop.customers", "shop.orders", "shop.products"]
    assert runs.counts[0] == EXPECTED_ROWS
    con = duckdb.connect(str(runs.root / "warehouse.duckdb"), read_only=True)
    try:
        customers = con.execute(
            "SELECT id, name, active, strftime(created_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S.%f'), "
            "balance::VARCHAR FROM shop.customers ORDER BY id"
        ).fetchall()
        report = con.execute("SELECT name, total::VARCHAR FROM mart.report").fetchall()
        products = con.execute("SELECT title, in_stock FROM shop.products ORDER BY id").fetchall()
    finally:
        con.close()
    assert customers == [
        (1, "Zoë Ångström", True, "2024-01-02 01:04:05.123456", "0.10"),
        (2, "Łukasz Żółć", False, "2024-07-01 04:59:59.000000", "1234567.89"),
        (3, "渡辺 さくら", True, "2024-12-31 12:00:00.000000", "-0.01"),
        (4, "Null Person", None, None, None),
    ]
    assert report == [("Łukasz Żółć", "99.99"), ("Zoë Ångström", "30.75"), ("渡辺 さくら", "5.01")]
    assert products == [("Käse", True), ("Brot", False), ("Crème brûlée", None)]


def test_every_run_publishes_and_the_warehouse_stays_consistent(runs: Runs) -> None:
    assert runs.quiet.code == 0 and runs.verbose.code == 0
    assert runs.counts == [EXPECTED_ROWS] * 3
    finished = [r for r in runs.runs if r["command"] == "run"]
    assert [r["status"] for r in finished] == ["succeeded"] * 3
    assert all(r["summary"]["published"] for r in finished)
    assert all(r["summary"]["loaded_rows"] == 19 for r in finished)
    assert len({r["run_id"] for r in finished}) == 3
    assert (runs.root / "warehouse.duckdb.previous").exists()


def test_quiet_prints_less_and_verbose_more(runs: Runs) -> None:
    sizes = [len(r.stdout) + len(r.stderr) for r in (runs.quiet, runs.default, runs.verbose)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert "Built" not in runs.quiet.stdout
    assert "✓ build mart.report" in runs.verbose.stderr
    assert "✓ extract shop.orders (5 rows)" in runs.verbose.stderr


def test_runs_show_lists_every_step_with_rows(runs: Runs) -> None:
    shown = runs.show_last
    assert shown["status"] == "succeeded"
    assert shown["run_id"] == runs.runs[0]["run_id"]
    steps = {(e["relation"], e["step"]): (e["status"], e["rows"]) for e in shown["events"]}
    expected = {
        **{(name, "extract"): ("succeeded", rows) for name, rows in EXPECTED_ROWS.items() if name.startswith("shop")},
        **{(name, "load"): ("succeeded", rows) for name, rows in EXPECTED_ROWS.items() if name.startswith("shop")},
        # a check step for every table that has constraints (keys or not-null columns) to check
        **{(name, "check"): ("succeeded", None) for name in EXPECTED_ROWS if name not in UNCHECKED},
        ("mart.customer_totals", "build"): ("succeeded", 4),
        ("mart.top_customers", "build"): ("succeeded", 3),
        ("mart.report", "build"): ("succeeded", None),
        ("*", "publish"): ("succeeded", None),
    }
    assert steps == expected
    assert len(shown["events"]) == len(expected)


def test_failing_transformation_keeps_the_published_warehouse(
    make_project: Callable[..., Path], cli: Callable[..., Any], digest: Callable[[Path], dict[str, str]]
) -> None:
    root = make_project()
    warehouse = root / "warehouse.duckdb"
    assert cli("-q", "run", cwd=root).code == 0
    before, before_file = digest(warehouse), sha256(warehouse)
    assert set(before) == set(EXPECTED_ROWS)

    # binds (so the check before the run lets it through), and fails on its rows
    original = (root / "schemas/mart/top_customers.sql").read_text()
    (root / "schemas/mart/top_customers.sql").write_text(
        "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('no_such_column') ELSE name END AS name, total\n"
        "FROM customer_totals\n"
    )
    result = cli("run", cwd=root)
    assert result.code == 1
    assert "✗ mart.top_customers" in result.stdout and "no_such_column" in result.stdout
    assert "mart.report skipped (upstream failed)" in result.stdout
    assert "Not published" in result.stdout
    assert result.stderr.count("Error: run ") == 1 and "Traceback" not in result.stderr
    assert sha256(warehouse) == before_file
    assert digest(warehouse) == before
    # the unpublished build is kept, hidden, for a resume; nothing readers would open
    kept = list(root.glob(".conveyor_build_*.building"))
    assert len(kept) == 1 and not list(root.glob("[!.]*building*"))

    shown = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)
    assert shown["status"] == "failed"
    statuses = {(e["relation"], e["step"]): e["status"] for e in shown["events"]}
    assert statuses[("mart.top_customers", "build")] == "failed"
    assert statuses[("mart.report", "build")] == "skipped"
    assert statuses[("mart.customer_totals", "build")] == "succeeded"
    assert ("*", "publish") not in statuses
    failed = next(e for e in shown["events"] if e["status"] == "failed")
    assert "no_such_column" in failed["error"]
    assert "schemas/mart/top_customers.sql" in failed["error"]

    # fixed, a resume rebuilds only what failed or was skipped, publishes, and cleans up
    (root / "schemas/mart/top_customers.sql").write_text(original)
    done = cli("load", "--resume", cwd=root)
    assert done.code == 0
    # the summary counts what this run built, and what it kept from the build it resumed
    kept = len(EXPECTED_ROWS) - 2
    assert "Built 2/2 relations" in done.stdout and f"{kept} kept from the build it resumed" in done.stdout
    resumed = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)
    rebuilt = {e["relation"] for e in resumed["events"] if e["step"] in ("load", "build")}
    assert rebuilt == {"mart.top_customers", "mart.report"}
    assert digest(warehouse) == before
    assert not list(root.glob(".conveyor_build_*"))


def test_required_relation_failing_publishes_nothing(
    make_project: Callable[..., Path], cli: Callable[..., Any], digest: Callable[[Path], dict[str, str]]
) -> None:
    root = make_project()
    warehouse = root / "warehouse.duckdb"
    assert cli("-q", "run", cwd=root).code == 0
    before, before_file = digest(warehouse), sha256(warehouse)
    (root / "schemas/mart/top_customers.sql").write_text(
        "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('no_such_column') ELSE name END AS name, total\n"
        "FROM customer_totals\n"
    )
    settings = root / "conveyor.yaml"
    base = settings.read_text() + "  publish_on_failure: true\n"

    settings.write_text(base + "required: [mart.top_customers]\n")
    result = cli("run", cwd=root)
    assert result.code == 1
    assert "required relation(s) failed: mart.top_customers" in result.stdout
    assert sha256(warehouse) == before_file and digest(warehouse) == before

    # the same failure without `required` is published (without the failed relations)
    settings.write_text(base)
    result = cli("run", cwd=root)
    assert result.code == 1
    assert "Published to" in result.stdout
    after = digest(warehouse)
    assert set(after) == set(EXPECTED_ROWS) - {"mart.top_customers", "mart.report"}
    assert after["shop.orders"] == before["shop.orders"]


def test_fail_fast_starts_nothing_after_the_first_failure(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    failing = (
        "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('boom') ELSE 'x' END AS name, 0 AS total\n"
        "FROM shop.orders\n"
    )
    later = {
        "mart/zzz.yaml": "name: mart.zzz\nkind: ctas\n",  # after mart.customer_totals in execution order
        "mart/zzz.sql": "SELECT count(*) AS n FROM shop.products\n",
    }
    root = make_project(designs={"mart/customer_totals.sql": failing, **later})
    assert cli("-q", "extract", cwd=root).code == 0

    plain = json.loads(cli("load", "--jobs", "1", "--format", "json", cwd=root).stdout)
    assert plain["failed"] == ["mart.customer_totals"], plain
    assert "mart.zzz" not in plain["skipped"], plain

    fast = cli("load", "--jobs", "1", "--fail-fast", "--format", "json", cwd=root)
    assert fast.code == 1
    data = json.loads(fast.stdout)
    assert "mart.zzz" in data["skipped"] and data["published"] is False
    events = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)["events"]
    (zzz,) = [e for e in events if e["relation"] == "mart.zzz"]
    assert zzz["status"] == "skipped" and "--fail-fast" in zzz["error"]
