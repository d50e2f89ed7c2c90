"""Helpers of the concurrency suite: a command held at a known point, and what must hold after two ran.

``Held`` runs ``conveyor ARGS`` in a subprocess with a hook in that process that stops it
(a) when a relation starts to load or build, with the warehouse's lock held and staging
half built, or (b) when a relation's extract has written its parts but not its manifest,
with the lake's lock held. ``assert_consistent`` checks that nothing was lost.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import uuid
from pathlib import Path

import psycopg

from conveyor import api
from conveyor.lake.lake import Lake
from conveyor.lake.manifest import MANIFEST
from conveyor.tracking.store import TrackingStore
from tests.conftest import Background, warehouse_digest

# ----------------------------------------------------------------------------- holding a command

HELD = """
import sys, time
from contextlib import contextmanager
from pathlib import Path

root, where, relation, started, release, *args = sys.argv[1:]
held = []

def hold():
    if held:
        return
    held.append(True)
    Path(started).touch()
    while not Path(release).exists():
        time.sleep(0.02)

if where == "build":
    # when ``relation`` starts to load or build: the warehouse's lock is held, staging half built
    from conveyor.runctx import RunContext
    step_of = RunContext.step

    @contextmanager
    def step(self, name, kind):
        with step_of(self, name, kind) as outcome:
            if name == relation and kind in ("load", "build"):
                hold()
            yield outcome

    RunContext.step = step
else:
    # when ``relation``'s parts are written, before its manifest: the lake's lock is held
    from conveyor.extract import extract as module
    attempt = module._with_retries

    def with_retries(ctx, job, given):
        output = attempt(ctx, job, given)
        if job.relation == relation:
            hold()
        return output

    module._with_retries = with_retries

from conveyor.cli.main import main
main(["-p", root, *args])
"""


class Held(Background):
    """``conveyor ARGS`` in a subprocess, held at ``where`` ("build" or "extract") of ``relation``."""

    def __init__(self, root: Path, where: str, relation: str, *args: str):
        tag = uuid.uuid4().hex[:8]
        self.started, self.release_file = root / f".held-{tag}", root / f".release-{tag}"
        argv = [sys.executable, "-c", HELD, str(root), where, relation, str(self.started), str(self.release_file)]
        super().__init__([*argv, *args], cwd=root)
        deadline = time.monotonic() + 120
        while not self.started.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the command never reached {where} of {relation}: {self.output}")
            time.sleep(0.02)

    def release(self) -> None:
        self.release_file.touch()


# ----------------------------------------------------------------------------- what must hold after


def digest_of(root: Path, env: str) -> dict[str, str]:
    """Relation -> sha256 of its sorted rows, in the environment's warehouse."""
    if env != "pg":
        return warehouse_digest(root / ("warehouse2.duckdb" if env == "dev2" else "warehouse.duckdb"))
    found = {}
    with psycopg.connect(api.open_project(root).environment_dsn("pg")) as con:
        con.execute("SET TIME ZONE 'UTC'")
        names = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('shop', 'mart') ORDER BY 1"
        ).fetchall()
        for (name,) in names:
            schema, table = name.split(".")
            rows = con.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1, 2'.encode()).fetchall()
            found[name] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    return found


def order_ids(root: Path, env: str) -> list[int]:
    if env == "pg":
        with psycopg.connect(api.open_project(root).environment_dsn("pg")) as con:
            return [row[0] for row in con.execute("SELECT id FROM shop.orders ORDER BY id").fetchall()]
    import duckdb

    with duckdb.connect(str(root / ("warehouse2.duckdb" if env == "dev2" else "warehouse.duckdb")), True) as con:
        return [row[0] for row in con.execute("SELECT id FROM shop.orders ORDER BY id").fetchall()]


def open_store(root: Path) -> TrackingStore:
    return TrackingStore.open(f"sqlite:///{root / '.conveyor' / 'tracking.db'}")


def runs(root: Path) -> list[tuple[str, str]]:
    """(command, status) of every run, oldest first."""
    with open_store(root) as store:
        return [(r.command, r.status) for r in reversed(store.list_runs(limit=200))]


def run_error(root: Path, command: str, status: str = "failed") -> str:
    with open_store(root) as store:
        found = [r for r in store.list_runs(limit=200) if r.command == command and r.status == status]
    assert found, runs(root)
    return found[0].error or ""


def running_run(root: Path, command: str) -> str:
    """The id of the one run of ``command`` that is running now."""
    with open_store(root) as store:
        found = [r.run_id for r in store.list_runs(limit=50, status="running") if r.command == command]
    assert len(found) == 1, runs(root)
    return found[0]


def assert_consistent(root: Path, *envs: str) -> None:
    """Complete extracts only, watermarks not ahead of the lake, no run running; each warehouse as a clean load."""
    lake = Lake(root / "lake")
    for source, relation in lake.tables():
        folder = lake.table_dir(source, relation)
        partial = [p.name for p in folder.iterdir() if p.is_dir() and not (p / MANIFEST).is_file()]
        assert not partial, f"extract folders without a manifest in {folder}: {partial}"
    with open_store(root) as store:
        assert [r.run_id for r in store.list_runs(limit=200, status="running")] == []
        for state in store.extract_state():
            latest = lake.latest(state.source, state.table_name)
            assert latest is not None, state
            assert state.last_success_extract_id == latest.extract_id, (state, latest.extract_id)
            if state.watermark:
                assert latest.watermark is not None
                assert json.loads(state.watermark)["value"] == latest.watermark["value"], (state, latest.watermark)
    for env in envs:
        before = digest_of(root, env)
        assert before, f"nothing published in {env}"
        outcome = api.load(api.open_project(root), env=env)  # a clean, sequential load of the same lake
        assert outcome.ok, outcome.build and outcome.build.errors
        assert digest_of(root, env) == before, f"{env} differs from a clean load of the lake"
