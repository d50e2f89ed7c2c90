"""Two commands at once, for real: each pair is refused with one clear paragraph or serialized.

Every pair runs as two processes that overlap deterministically: the first is held at a
known point (a load in the middle of its build, an extract with its parts written but no
manifest yet) by a hook in its own process, the second runs meanwhile, then the first is
let go. After both (and a rerun of a refused one) the test checks that nothing was lost:

- the warehouse equals what a clean sequential load of the same lake makes (checksums of
  every relation's rows);
- the lake holds complete extracts only (every extract folder has its manifest);
- no watermark in the tracking store is ahead of the lake;
- no run is left ``running``, and each run is recorded with the status it really had.

| pair | DuckDB | PostgreSQL |
|---|---|---|
| two loads of one environment | second refused (exit 1, names the run) | same |
| load and update | update waits, then applies | same |
| run and load (either first) | the later one's build is refused | same |
| a refused load beside a failing one, then load --resume | resumes the failing one's build | - |
| two extracts of one relation | second waits (lake.lock_timeout), then continues | (no warehouse) |
| an extract (lake.keep 1) during a load | retention waits for the load | same |
| extracts of two designs over one upstream table | side by side, neither waits | (no warehouse) |
| two pipelines sharing a table, other environments | the shared extract waits | - |
| two pipelines sharing an environment | second refused (exit 2) | - |
| a scheduled run starting as a manual one holds its locks | the scheduled one waits | - |
| two schedulers on one store | second refused (exit 2) | - |
| unload, validate --with-warehouse beside a load | run side by side | same |
"""

from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from testkit.services import reachable as _reachable

from conveyor import api
from conveyor.lake.lake import Lake
from conveyor.pipeline import worker
from conveyor.pipeline.locks import lock_names
from tests.conftest import CONVEYOR_YAML, Background, CliResult, build_project, run_cli
from tests.faults.holding import (
    Held,
    assert_consistent,
    digest_of,
    open_store,
    order_ids,
    run_error,
    running_run,
    runs,
)
from tests.warehouse.postgres.conftest import PG_ADMIN as ADMIN
from tests.warehouse.postgres.conftest import drop_database

# ----------------------------------------------------------------------------- commands at once


@pytest.fixture
def held() -> Iterator[Callable[..., Held]]:
    """``held(root, "build", "mart.customer_totals", "load")``; let go and ended after the test."""
    started: list[Held] = []

    def start(root: Path, where: str, relation: str, *args: str) -> Held:
        command = Held(root, where, relation, *args)
        started.append(command)
        return command

    yield start
    for command in started:
        command.release()
        if command.process.poll() is None:
            try:
                command.finish(timeout=60)
            except Exception:
                command.process.kill()
                command.process.wait()


@pytest.fixture
def later() -> Iterator[Callable[..., Background]]:
    """``later(root, "update", ...)``: the console script in a subprocess (killed at the end)."""
    from tests.conftest import CONVEYOR

    started: list[Background] = []

    def start(root: Path, *args: str) -> Background:
        command = Background([CONVEYOR, "-p", str(root), *args], cwd=root)
        started.append(command)
        return command

    yield start
    for command in started:
        if command.process.poll() is None:
            command.process.kill()
            command.process.wait()


def cli(root: Path, *args: str, timeout: float = 90) -> CliResult:
    return run_cli("-p", str(root), *args, cwd=root, timeout=timeout)


def one_paragraph(text: str) -> str:
    """Output as one line, with no traceback."""
    assert "Traceback" not in text, text
    return " ".join(text.split())


# ----------------------------------------------------------------------------- projects

PG_ENVIRONMENT = '  pg:\n    type: postgres\n    dsn: "${PGWH_DSN}"\n'
SECOND_ENVIRONMENT = "  dev2:\n    type: duckdb\n    dsn: warehouse2.duckdb\n"
INCREMENTAL = "extract:\n  incremental: {cursor: id}\n"


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this module."""
    if not _reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"conveyor_concur_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        drop_database(name)


@pytest.fixture(params=["dev", pytest.param("pg", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment a test loads: DuckDB ``dev`` or PostgreSQL ``pg`` (a fresh database's schemas)."""
    if request.param == "pg":
        dsn = request.getfixturevalue("pg_database")
        with psycopg.connect(dsn, autocommit=True) as con:
            for (schema,) in con.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname NOT IN ('information_schema', 'public')"
            ).fetchall():
                con.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
        monkeypatch.setenv("PGWH_DSN", dsn)  # the subprocesses inherit it
    return str(request.param)


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """``project(incremental=True, lake="  keep: 1\n")``: the test project with ``dev``, ``dev2`` and ``pg``, run once.

    ``run`` names the environment of the first ``conveyor run`` (None: none); ``lake`` adds lake settings.
    """
    counter = iter(range(100))

    def make(*, incremental: bool = False, designs: dict[str, str | None] | None = None, run: str | None = "dev",
             lake: str = "") -> Path:  # fmt: skip
        settings = CONVEYOR_YAML.replace("defaults:", SECOND_ENVIRONMENT + PG_ENVIRONMENT + "defaults:")
        settings = settings.replace("  part_rows: 1000\n", "  part_rows: 1000\n" + lake)
        root = build_project(tmp_path / f"project{next(counter)}", settings=settings, designs=designs)
        if incremental:
            design = root / "schemas/shop/orders.yaml"
            design.write_text(design.read_text() + INCREMENTAL)
        if run:
            outcome = api.run(api.open_project(root), env=run)
            assert outcome.ok, outcome.build and outcome.build.errors
        return root

    return make


def add_orders(root: Path, ids: range) -> None:
    with sqlite3.connect(root / "upstream.db") as con:
        con.executemany("INSERT INTO orders VALUES (?, 1, 1.5, NULL)", [(i,) for i in ids])


def upstream_order_ids(root: Path) -> list[int]:
    with sqlite3.connect(root / "upstream.db") as con:
        return [row[0] for row in con.execute("SELECT id FROM orders ORDER BY id")]


# ----------------------------------------------------------------------------- the warehouse's pairs


def test_two_loads_of_one_environment_the_second_is_refused(
    project: Callable[..., Path], env: str, held: Callable[..., Held]
) -> None:
    root = project(run=env)
    first = held(root, "build", "mart.customer_totals", "load", "--env", env)
    holder = running_run(root, "load")
    second = cli(root, "load", "--env", env)
    assert second.code == 1, second
    refused = one_paragraph(second.stderr)
    assert "another load" in refused and holder in refused, refused  # names the run it met
    assert "Wait for it to finish, then try again" in refused, refused
    first.release()
    assert first.finish() == 0, first.output
    assert cli(root, "load", "--env", env).code == 0  # the refused one, again
    assert runs(root) == [("run", "succeeded"), ("load", "succeeded"), ("load", "failed"), ("load", "succeeded")]
    assert holder in run_error(root, "load")
    assert_consistent(root, env)


def test_an_update_during_a_load_waits_and_applies_after_it(
    project: Callable[..., Path], env: str, held: Callable[..., Held], later: Callable[..., Background]
) -> None:
    root = project(incremental=True, run=env)
    first = held(root, "build", "mart.customer_totals", "load", "--env", env)
    add_orders(root, range(100, 103))
    assert cli(root, "extract", "shop.orders").code == 0  # a new increment only the update applies
    update = later(root, "update", "shop.orders", "--env", env)
    waited = update.wait_for("waiting for the load", timeout=60)
    still = update.process.poll() is None
    first.release()
    assert first.finish() == 0, first.output
    assert update.finish() == 0, update.output
    assert waited and still, update.output
    assert order_ids(root, env) == upstream_order_ids(root)
    assert [c for c, s in runs(root) if s == "succeeded"] == ["run", "load", "extract", "update"]
    assert_consistent(root, env)


@pytest.mark.slow
def test_a_load_during_a_run_and_a_run_during_a_load_are_refused_at_the_build(
    project: Callable[..., Path], env: str, held: Callable[..., Held]
) -> None:
    root = project(run=env)
    # a run holds the warehouse: a load is refused
    first = held(root, "build", "mart.customer_totals", "run", "--env", env)
    holder = running_run(root, "run")
    second = cli(root, "load", "--env", env)
    assert second.code == 1, second
    assert holder in one_paragraph(second.stderr), second.stderr
    first.release()
    assert first.finish() == 0, first.output
    assert cli(root, "load", "--env", env).code == 0
    # a load holds the warehouse: a run extracts (the lake is not the warehouse), then its build is refused
    add_orders(root, range(100, 102))
    first = held(root, "build", "mart.customer_totals", "load", "--env", env)
    holder = running_run(root, "load")
    second = cli(root, "run", "--env", env)
    assert second.code == 1, second
    refused = one_paragraph(second.stdout + second.stderr)
    assert holder in refused and "another load" in refused, refused
    first.release()
    assert first.finish() == 0, first.output
    assert cli(root, "run", "--env", env).code == 0
    assert order_ids(root, env) == upstream_order_ids(root)
    assert runs(root)[1:] == [
        ("run", "succeeded"), ("load", "failed"), ("load", "succeeded"),
        ("load", "succeeded"), ("run", "failed"), ("run", "succeeded"),
    ]  # fmt: skip
    assert_consistent(root, env)


@pytest.mark.slow
def test_unload_and_validate_with_the_warehouse_run_beside_a_load(
    project: Callable[..., Path], env: str, held: Callable[..., Held]
) -> None:
    root = project(run=env)
    before = digest_of(root, env)
    first = held(root, "build", "mart.customer_totals", "load", "--env", env)
    unload = cli(root, "unload", "mart.customer_totals", "--env", env)  # reads what is published, not the build
    assert unload.code == 0, unload
    validate = cli(root, "validate", "--with-warehouse", env, "--skip-sources")  # a throw-away copy
    assert validate.code == 0, validate
    first.release()
    assert first.finish() == 0, first.output
    assert digest_of(root, env) == before
    assert sorted(c for c, s in runs(root) if s == "succeeded") == ["load", "run", "unload"]
    assert_consistent(root, env)


# ----------------------------------------------------------------------------- the lake's pairs


def test_two_extracts_of_one_relation_the_second_waits_and_continues_from_the_first(
    project: Callable[..., Path], held: Callable[..., Held], later: Callable[..., Background]
) -> None:
    root = project(incremental=True)
    lake = Lake(root / "lake")
    committed = len(lake.committed("shop", "shop.orders"))
    add_orders(root, range(100, 103))
    first = held(root, "extract", "shop.orders", "extract", "shop.orders")
    holder = running_run(root, "extract")
    add_orders(root, range(200, 204))  # after the first read: only the second sees them
    second = later(root, "extract", "shop.orders")
    waited = second.wait_for(f'waiting for another extract of "shop.orders" to finish (run {holder}', timeout=60)
    still = second.process.poll() is None
    assert len(lake.committed("shop", "shop.orders")) == committed  # the first's parts are not visible yet
    first.release()
    assert first.finish() == 0, first.output
    assert second.finish() == 0, second.output
    assert waited and still, second.output
    chain = lake.chain("shop", "shop.orders")
    # the second continued from the first one's watermark (inclusive: the key merges the row at it)
    assert [m.watermark["value"] for m in chain[-2:]] == [102, 203], [m.watermark for m in chain]
    assert chain[-1].watermark["low"] == 102
    assert runs(root) == [("run", "succeeded"), ("extract", "succeeded"), ("extract", "succeeded")]
    assert api.load(api.open_project(root)).ok
    assert order_ids(root, "dev") == upstream_order_ids(root)
    assert_consistent(root, "dev")


def test_an_extract_gives_up_after_the_lake_lock_timeout_and_a_rerun_succeeds(
    project: Callable[..., Path], held: Callable[..., Held]
) -> None:
    root = project(incremental=True, lake="  lock_timeout: 1\n")
    add_orders(root, range(100, 103))
    first = held(root, "extract", "shop.orders", "extract", "shop.orders")
    holder = running_run(root, "extract")
    second = cli(root, "extract", "shop.orders")
    assert second.code == 1, second
    refused = one_paragraph(second.stdout + second.stderr)
    assert 'another extract of "shop.orders"' in refused and "did not finish within 1 s" in refused, refused
    assert f"(run {holder}, pid {first.process.pid} on " in refused, refused
    assert "then extract again" in refused, refused
    first.release()
    assert first.finish() == 0, first.output
    assert api.extract_tables(api.open_project(root), ["shop.orders"]).ok  # the refused one, again
    assert api.load(api.open_project(root)).ok
    assert order_ids(root, "dev") == upstream_order_ids(root)
    assert_consistent(root, "dev")


def test_extracts_of_two_designs_over_one_upstream_table_do_not_wait_for_each_other(
    project: Callable[..., Path], held: Callable[..., Held]
) -> None:
    big = {
        "shop/big_orders.yaml": (
            "name: shop.big_orders\nsource_table: orders\n"
            "columns:\n  - {name: id, type: bigint}\n  - {name: amount, type: 'decimal(10,2)'}\n"
            "extract:\n  condition: amount > 10\n"
        )
    }
    root = project(designs=big)
    first = held(root, "extract", "shop.orders", "extract", "shop.orders")
    began = time.monotonic()
    second = cli(root, "extract", "shop.big_orders")  # its own folder, lock and watermark
    assert second.code == 0, second
    assert "waiting" not in second.stdout + second.stderr
    assert first.process.poll() is None  # still held: the two ran side by side
    first.release()
    assert first.finish() == 0, first.output
    assert time.monotonic() - began < 60
    assert_consistent(root, "dev")


# ----------------------------------------------------------------------------- pipelines and schedulers


def write_pipelines(root: Path, pipelines: dict[str, str]) -> None:
    for name, text in pipelines.items():
        path = root / "pipelines" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)


@pytest.mark.slow
def test_two_pipelines_sharing_a_table_serialize_its_extract_and_one_sharing_an_environment_is_refused(
    project: Callable[..., Path], held: Callable[..., Held], later: Callable[..., Background]
) -> None:
    root = project(incremental=True)
    assert api.run(api.open_project(root), env="dev2").ok
    write_pipelines(
        root,
        {
            "first": "schedule: manual\nsteps: full\nenvironments: {primary: dev}\n",
            "second": "schedule: manual\nsteps: full\nenvironments: {primary: dev2}\n",
            "third": "schedule: manual\nsteps: selective\nenvironments: {primary: dev}\n",
        },
    )
    add_orders(root, range(100, 103))
    first = held(root, "extract", "shop.orders", "pipeline", "run", "first")
    first_run = running_run(root, "pipeline")
    add_orders(root, range(200, 202))
    second = later(root, "pipeline", "run", "second")
    waited = second.wait_for('waiting for another extract of "shop.orders" to finish', timeout=60)
    still = second.process.poll() is None
    third = cli(root, "pipeline", "run", "third")  # the same environment as "first"
    assert third.code == 2, third
    refused = one_paragraph(third.stderr)
    assert "environment dev is busy" in refused and first_run in refused, refused
    first.release()
    assert first.finish() == 0, first.output
    assert second.finish() == 0, second.output
    assert waited and still, second.output
    assert order_ids(root, "dev2") == upstream_order_ids(root)  # the second extracted after the first
    assert cli(root, "pipeline", "run", "third").code == 0  # the refused one, again: applies 200-201
    assert order_ids(root, "dev") == upstream_order_ids(root)
    with open_store(root) as store:
        pipeline_runs = {r.pipeline: r.status for r in store.list_runs(limit=50, command="pipeline")}
    assert pipeline_runs == {"first": "succeeded", "second": "succeeded", "third": "succeeded"}
    assert_consistent(root, "dev", "dev2")


def test_pipeline_locks_are_taken_in_one_order() -> None:
    """Two pipelines over the same environments take their locks in one order, so one of them wins."""
    from conveyor.config.pipelines import PipelineConfig

    one = PipelineConfig.model_validate({"schedule": "manual", "environments": {"primary": "b", "secondary": "a"}})
    two = PipelineConfig.model_validate({"schedule": "manual", "environments": {"primary": "a", "secondary": "b"}})
    assert lock_names("x", one)[1:] == lock_names("y", two)[1:] == ["environment:a", "environment:b"]


def test_a_second_scheduler_on_one_store_is_refused(project: Callable[..., Path]) -> None:
    from tests.pipeline.conftest import SchedulerProcess

    root = project(run=None)
    scheduler = SchedulerProcess(root)
    try:
        with open_store(root) as store:
            scheduler.wait_started(store)
        second = cli(root, "scheduler", "--poll", "0.2", timeout=60)
        assert second.code == 2, second
        refused = one_paragraph(second.stderr)
        assert "another scheduler is already running on this tracking store" in refused, refused
        assert f":{scheduler.pid} since" in refused and "Stop it first" in refused, refused
        assert scheduler.process.poll() is None
    finally:
        assert scheduler.stop() == 0, scheduler.output()
    with open_store(root) as store:
        assert store.lock_holder("scheduler") is None
        assert store.list_runs(status="running") == []


@pytest.mark.slow
def test_an_extract_during_a_load_never_removes_what_the_load_reads(
    project: Callable[..., Path], env: str, held: Callable[..., Held]
) -> None:
    """With lake.keep 1, each extract removes the one before it: not while a load still reads it."""
    root = project(run=env, lake="  keep: 1\n")
    assert cli(root, "extract").code == 0
    first = held(root, "build", "shop.customers", "load", "--env", env, "--jobs", "1")  # nothing else read yet
    add_orders(root, range(100, 103))
    assert cli(root, "extract").code == 0  # every table again: the ones the load is about to read are older
    first.release()
    assert first.finish() == 0, first.output
    lake = Lake(root / "lake")
    assert len(lake.committed("shop", "shop.products")) == 2  # retention waited for the load
    assert api.extract_tables(api.open_project(root), ["shop.products"]).ok
    assert len(lake.committed("shop", "shop.products")) == 1  # and the next extract caught up
    assert cli(root, "load", "--env", env).code == 0
    assert order_ids(root, env) == upstream_order_ids(root)
    assert_consistent(root, env)


@pytest.mark.slow
def test_a_load_refused_beside_a_failing_load_does_not_hide_it_from_resume(
    project: Callable[..., Path], held: Callable[..., Held]
) -> None:
    root = project()
    sql = root / "schemas/mart/top_customers.sql"
    good = sql.read_text()
    sql.write_text(
        "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('nope') ELSE name END AS name, total"
        " FROM customer_totals\n"
    )
    first = held(root, "build", "mart.customer_totals", "load")  # will fail at mart.top_customers
    failing = running_run(root, "load")
    assert cli(root, "load").code == 1  # refused: recorded as a failed load that built nothing
    first.release()
    assert first.finish() == 1, first.output
    sql.write_text(good)
    resumed = cli(root, "load", "--resume")
    assert resumed.code == 0, resumed
    assert f"resumed the build of run {failing}" in one_paragraph(resumed.stdout + resumed.stderr), resumed
    assert_consistent(root, "dev")


def test_a_scheduled_run_that_meets_a_manual_one_waits_for_its_locks(
    project: Callable[..., Path], held: Callable[..., Held], later: Callable[..., Background]
) -> None:
    """The scheduler saw the locks free, a manual run took them while its child started: the child waits."""
    from conveyor.tracking.store import new_run_id

    root = project(run=None)
    write_pipelines(
        root,
        {"products": "schedule: manual\nsteps: [extract]\nenvironments: {primary: dev}\nselection: [shop.products]\n"},
    )
    manual = held(root, "extract", "shop.products", "pipeline", "run", "products")
    manual_run = running_run(root, "pipeline")
    scheduled_run = new_run_id()
    # what the scheduler starts for a slot: the worker, with the run id it claimed
    slot = datetime.fromisoformat("2026-12-07T02:30:00+00:00")
    scheduled = Background([sys.executable, *worker.argv(str(root), "products", scheduled_run, slot)], cwd=root)
    waited = scheduled.wait_for(f"waiting for pipeline products, which another run holds ({manual_run}@", timeout=60)
    still = scheduled.process.poll() is None
    manual.release()
    assert manual.finish() == 0, manual.output
    assert scheduled.finish() == 0, scheduled.output
    assert waited and still, scheduled.output
    with open_store(root) as store:
        statuses = {r.run_id: r.status for r in store.list_runs(limit=10, command="pipeline")}
    assert statuses == {manual_run: "succeeded", scheduled_run: "succeeded"}
    assert_consistent(root)
