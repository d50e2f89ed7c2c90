"""Crash points: SIGKILL at every named place of a run or an update, then check what is left.

Each case copies a project in a known state (the bundled-style test project after one clean
``conveyor run``, its upstream changed since), runs a command that kills itself at one crash
point (``CONVEYOR_CRASH_AT``, see conveyor/faults.py and docs/reliability.md), and checks:

- no partial extract is visible: every manifest's parts exist, match their checksums and
  read back with the rows the manifest names;
- the warehouse is entirely old or entirely new: the checksum of every relation equals the
  state before the command or the state a clean run of it leaves;
- the watermark is never ahead of the lake: the stored one is at most the largest cursor
  value in the committed parts;
- no run is left ``running``: the killed one reads as ``abandoned``;
- a rerun converges: the same command again (and ``load --resume`` for a run killed while
  loading) leaves exactly the checksums of a clean run.

Two more cases chain kills: a `load --resume` killed in turn must be resumable, and a build
kept from before an update that died after committing must not be resumed over it. A slow
test kills runs and updates at random moments of their work, ten per warehouse.

Commands run in processes forked by tests/faults/forkcli.py (``--serve``), which pays the
imports once; a crash point kills only its own forked process.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from testkit.services import PG_ADMIN as ADMIN
from testkit.services import reachable as _reachable

from conveyor.lake.lake import Lake
from conveyor.tracking.store import TrackingStore, default_dsn
from tests.conftest import CONVEYOR, CONVEYOR_YAML, build_project, warehouse_digest
from tests.faults.forkcli import ForkServer

SIGKILLED = -9

SETTINGS = CONVEYOR_YAML.replace("  part_rows: 1000\n", "  part_rows: 1000\n  keep: 1\n").replace(
    "defaults:", '  pg:\n    type: postgres\n    dsn: "${CRASH_PG_DSN}"\ndefaults:'
)
"""The test project with retention at one full extract, and a PostgreSQL environment ``pg``."""

ORDERS_INCREMENTAL = """\
name: shop.orders
columns:
  - {name: id, type: bigint}
  - {name: customer_id, type: bigint}
  - {name: amount, type: "decimal(10,2)"}
  - {name: ordered_at, type: timestamptz}
constraints:
  primary_key: [id]
extract:
  incremental:
    cursor: id
"""

ENVIRONMENT = {"duckdb": "dev", "postgres": "pg"}


@dataclass(frozen=True)
class Point:
    """A crash point, the command that reaches it, and where it applies."""

    name: str
    command: str  # "run" or "update"
    warehouses: tuple[str, ...] = ("duckdb", "postgres")
    resume: bool = False  # killed while loading: `load --resume` must finish the run's load
    note: str = ""


POINTS = [
    Point("lake.manifest.before_rename", "run"),
    Point("lake.manifest.after_rename", "run", note="manifest committed, watermark not stored"),
    Point("extract.watermark.after_store", "run"),
    Point("lake.prune.after_manifest", "run"),
    Point("lake.prune.mid_parts", "run"),
    Point("build.relation.after:3", "run", resume=True),
    Point("pg.copy.batch:2", "run", ("postgres",), resume=True),
    Point("pg.publish.before_commit", "run", ("postgres",), resume=True),
    Point("duckdb.publish.before_rename", "run", ("duckdb",), resume=True),
    Point("duckdb.publish.after_rename", "run", ("duckdb",), resume=True),
    Point("run.before_finish", "run", resume=True),
    Point("warehouse.merge.mid", "update"),
    Point("duckdb.update.after_commit", "update", ("duckdb",)),
    Point("run.before_finish", "update"),
]

CASES = [
    pytest.param(point, warehouse, id=f"{warehouse}-{point.command}-{point.name}")
    for point in POINTS
    for warehouse in point.warehouses
]


def change_upstream(root: Path) -> None:
    """New orders (an increment), a changed customer and a new product: a run after this differs."""
    con = sqlite3.connect(root / "upstream.db")
    con.executescript(
        """
        INSERT INTO orders VALUES (15, 4, 7.77, '2024-05-01T00:00:00Z'), (16, 2, 1.50, NULL);
        UPDATE customers SET balance = 42.42, active = 1 WHERE id = 4;
        INSERT INTO products VALUES (103, 'Neu', 1);
        """
    )
    con.commit()
    con.close()


# ---------------------------------------------------------------------------- PostgreSQL databases


class Databases:
    """Throw-away PostgreSQL databases, cloned from each other with CREATE DATABASE ... TEMPLATE.

    A DROP DATABASE waits for a checkpoint, so a case's databases are dropped in the
    background while the next cases run; ``kept`` ones (the templates) at the end.
    """

    def __init__(self) -> None:
        self.made: list[str] = []
        self.kept: set[str] = set()
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-databases")

    def dsn(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    def create(self, template: str | None = None) -> str:
        name = f"conveyor_crash_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            if template is None:
                admin.execute(f'CREATE DATABASE "{name}"'.encode())
            else:
                self._clone(admin, template, name)
        self.made.append(name)
        return name

    @staticmethod
    def _clone(admin: psycopg.Connection, template: str, name: str) -> None:
        # a killed client's session may linger for a moment: end it, then copy
        for attempt in range(50):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (template,),
            )
            try:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'.encode())
                return
            except psycopg.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    def release(self) -> None:
        """Drop, in the background, every database made so far that is not kept."""
        names = [name for name in self.made if name not in self.kept]
        self.made = [name for name in self.made if name in self.kept]
        if names:
            self._dropper.submit(self._drop, names)

    @staticmethod
    def _drop(names: list[str]) -> None:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def drop_all(self) -> None:
        self.kept.clear()
        self.release()
        self._dropper.shutdown(wait=True)


def pg_digest(dsn: str) -> dict[str, str]:
    """Relation -> md5 of its rows in a stable order, for every published relation (no staging, no backup)."""
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("SET TIME ZONE 'UTC'")
        names = con.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'v', 'm') AND n.nspname NOT LIKE 'pg\\_%' "
            "AND n.nspname NOT IN ('information_schema', 'public') AND position('$' in n.nspname) = 0 "
            "ORDER BY 1, 2"
        ).fetchall()
        found = {}
        for schema, table in names:
            target = f'"{schema}"."{table}"'
            row = con.execute(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {target} AS t".encode()
            ).fetchone()
            assert row is not None
            found[f"{schema}.{table}"] = row[0]
        return found


# ---------------------------------------------------------------------------- the states compared against


@dataclass
class Place:
    """A project folder and, for PostgreSQL, the database of its ``pg`` environment."""

    root: Path
    warehouse: str
    database: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"CRASH_PG_DSN": f"postgresql://postgres@127.0.0.1:5432/{self.database}"} if self.database else {}

    def digest(self) -> dict[str, str]:
        if self.warehouse == "postgres":
            return pg_digest(self.env["CRASH_PG_DSN"])
        path = self.root / "warehouse.duckdb"
        return warehouse_digest(path) if path.exists() else {}


@dataclass
class World:
    """Templates to copy per case, and the digests of the states a crash may leave."""

    before_run: Place  # after a clean run, upstream changed since
    before_update: Place  # the same, plus a clean extract of the change
    old: dict[str, str] = field(default_factory=dict)
    after_run: dict[str, str] = field(default_factory=dict)
    after_update: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # how long a clean run and update take, once started


class Lab:
    """Makes places: copies of templates (with a cloned database) and runs commands in them."""

    def __init__(self, base: Path, server: ForkServer, databases: Databases):
        self.base, self.server, self.databases = base, server, databases
        self.worlds: dict[str, World] = {}

    def copy(self, place: Place) -> Place:
        root = self.base / f"p-{uuid.uuid4().hex[:8]}"
        shutil.copytree(place.root, root, symlinks=True)
        database = self.databases.create(place.database) if place.database else None
        return Place(root, place.warehouse, database)

    def cli(self, place: Place, *args: str, crash_at: str | None = None) -> tuple[int, str]:
        env = dict(place.env)
        if crash_at:
            env["CONVEYOR_CRASH_AT"] = crash_at
        return self.server(place.root, *args, env=env)

    def ok(self, place: Place, *args: str) -> None:
        code, out = self.cli(place, *args)
        assert code == 0, f"conveyor {' '.join(args)} failed ({code}):\n{out}"

    def world(self, warehouse: str) -> World:
        if warehouse in self.worlds:
            return self.worlds[warehouse]
        env = ENVIRONMENT[warehouse]
        root = build_project(
            self.base / f"template-{warehouse}", settings=SETTINGS, designs={"shop/orders.yaml": ORDERS_INCREMENTAL}
        )
        first = Place(root, warehouse, self.databases.create() if warehouse == "postgres" else None)
        self.ok(first, "-q", "run", "--env", env)
        world = World(before_run=first, before_update=first, old=first.digest())
        change_upstream(root)
        reference = self.copy(first)
        self.ok(reference, "-q", "run", "--env", env)
        world.after_run = reference.digest()
        world.seconds["run"] = last_duration(reference)
        world.before_update = self.copy(first)
        self.ok(world.before_update, "-q", "extract")
        reference = self.copy(world.before_update)
        self.ok(reference, "-q", "update", "--env", env)
        world.after_update = reference.digest()
        world.seconds["update"] = last_duration(reference)
        assert world.old != world.after_run and world.after_update == world.after_run
        self.databases.kept |= {p.database for p in (world.before_run, world.before_update) if p.database}
        self.worlds[warehouse] = world
        return world


def last_duration(place: Place) -> float:
    """How long the newest run of a project took, as its run records it."""
    store = TrackingStore.open(default_dsn(place.root))
    try:
        return float(store.list_runs(limit=1)[0].duration_s or 1.0)
    finally:
        store.close()


@pytest.fixture
def lab(shared_lab: Lab) -> Iterator[Lab]:
    """The module's lab; the databases a test made are dropped after it."""
    yield shared_lab
    shared_lab.databases.release()


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    server = ForkServer()
    databases = Databases()
    try:
        yield Lab(tmp_path_factory.mktemp("crash"), server, databases)
    finally:
        server.close()
        databases.drop_all()


# ---------------------------------------------------------------------------- the invariants


def lake_problems(root: Path) -> list[str]:
    """What a lake reader trusting manifests would find broken: missing, changed or unreadable parts."""
    lake = Lake(root / "lake")
    problems = []
    for source, relation in lake.tables():
        if not lake.chain(source, relation):
            problems.append(f"partial extract: {relation} has no full extract to load")
        for manifest in lake.committed(source, relation):
            assert manifest.folder is not None
            for part in manifest.files:
                path = manifest.folder / part.path
                if not path.is_file():
                    problems.append(f"partial extract: {relation} {manifest.extract_id} lacks {part.path}")
                    continue
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != part.sha256 or pq.read_table(path).num_rows != part.rows:
                    problems.append(f"partial extract: {relation} {manifest.extract_id} {part.path} differs")
    return problems


def max_cursor(root: Path, relation: str, cursor: str) -> int | None:
    """The largest cursor value in the committed parts of ``relation``."""
    found = None
    for manifest in Lake(root / "lake").committed("shop", relation):
        for path in manifest.paths():
            top = pc.max(pq.read_table(path, columns=[cursor]).column(cursor)).as_py()
            if top is not None and (found is None or top > found):
                found = top
    return found


def stored_watermark(store: TrackingStore, relation: str) -> int | None:
    text = store.watermark("shop", relation)
    return json.loads(text)["value"] if text else None


def state_problems(place: Place, old: dict[str, str], new: dict[str, str], *, killed_run: bool = True) -> list[str]:
    """Every invariant a crash must keep, checked on what the killed command left."""
    problems = lake_problems(place.root)
    digest = place.digest()
    if digest not in (old, new):
        mixed = sorted(name for name in set(digest) | set(new) if digest.get(name) != new.get(name))
        problems.append(f"mixed publish: neither the old nor the new warehouse; differs from the new in {mixed}")
    store = TrackingStore.open(default_dsn(place.root))
    try:
        mark, top = stored_watermark(store, "shop.orders"), max_cursor(place.root, "shop.orders", "id")
        if mark is not None and (top is None or mark > top):
            problems.append(f"watermark ahead: stored {mark}, committed parts reach {top}")
        runs = store.list_runs(limit=100)  # reading marks dead runs abandoned
        problems += [f"run left running: {r.command} {r.run_id}" for r in runs if r.status == "running"]
        problems += [
            f"run left running: the extract of {e.table_name} ({e.extract_id}) reads running"
            for e in store.list_extracts(limit=100)
            if e.status == "running"
        ]
        problems += [
            f"run left running: the extract state of {s.table_name} reads running"
            for s in store.extract_state()
            if s.status == "running"
        ]
        if killed_run and runs[0].status != "abandoned":
            problems.append(f"the killed run reads as {runs[0].status}, not abandoned")
    finally:
        store.close()
    return problems


def converged(lab: Lab, place: Place, args: tuple[str, ...], expected: dict[str, str]) -> list[str]:
    code, out = lab.cli(place, "-q", *args)
    if code != 0:
        return [f"rerun did not converge: conveyor {' '.join(args)} exited {code}: {out.strip()[-600:]}"]
    problems = [p for p in lake_problems(place.root)]
    if place.digest() != expected:
        problems.append(f"rerun did not converge: conveyor {' '.join(args)} left other checksums than a clean run")
    store = TrackingStore.open(default_dsn(place.root))
    try:
        mark, top = stored_watermark(store, "shop.orders"), max_cursor(place.root, "shop.orders", "id")
    finally:
        store.close()
    if args[0] != "load" and mark != top:
        problems.append(f"rerun did not converge: watermark {mark}, committed parts reach {top}")
    return problems


# ---------------------------------------------------------------------------- the cases


@pytest.mark.postgres
@pytest.mark.parametrize(("point", "warehouse"), CASES)
def test_a_crash_point_leaves_old_or_new_and_a_rerun_converges(lab: Lab, point: Point, warehouse: str) -> None:
    if warehouse == "postgres" and not _reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    world = lab.world(warehouse)
    env = ENVIRONMENT[warehouse]
    if point.command == "run":
        place, new = lab.copy(world.before_run), world.after_run
    else:
        place, new = lab.copy(world.before_update), world.after_update

    code, out = lab.cli(place, "-q", point.command, "--env", env, crash_at=point.name)
    assert code == SIGKILLED, f"the crash point {point.name} was not reached (exit {code}):\n{out}"

    problems = state_problems(place, world.old, new)
    if point.resume:
        problems += converged(lab, lab.copy(place), ("load", "--resume", "--env", env), new)
    problems += converged(lab, place, (point.command, "--env", env), new)
    assert not problems, "\n".join(problems)


def test_crash_points_are_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    section = text.split("## Crash points", 1)[1]
    for point in POINTS:
        assert f"`{point.name.partition(':')[0]}`" in section, point.name


def test_an_unset_crash_point_costs_a_comparison() -> None:
    from conveyor import faults

    started = time.perf_counter()
    for _ in range(100_000):
        faults.crash_point("lake.manifest.before_rename")
    assert time.perf_counter() - started < 0.5


# ---------------------------------------------------------------------------- kills at random moments


def wait_for_a_running_run(place: Place, process: subprocess.Popen, timeout: float = 60) -> None:
    """Return once the command's run is recorded ``running`` (or the command has ended)."""
    uri = f"file:{place.root / '.conveyor' / 'tracking.db'}?mode=ro"
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        con = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            if con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]:
                return
        finally:
            con.close()
        time.sleep(0.005)


def killed_in(place: Place, command: str) -> str:
    """The step the killed command was in: the last step its run recorded (or where it was outside its run)."""
    store = TrackingStore.open(default_dsn(place.root))
    try:
        run = store.list_runs(limit=1)[0]
        if run.command != command:
            return "before its run began"
        if run.status == "succeeded":
            return "after its run ended"
        events = store.run_events(run.run_id)
    finally:
        store.close()
    return events[-1].step if events else "before its first step"


KILLS = 10
"""Kills per warehouse; half of them hit a `conveyor run`, half a `conveyor update`."""


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_kills_at_random_moments_leave_old_or_new_and_a_rerun_converges(lab: Lab, warehouse: str) -> None:
    if warehouse == "postgres" and not _reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    seed = int(os.environ.get("CONVEYOR_KILL_SEED") or random.randrange(1 << 32))
    print(f"random kills on {warehouse}: seed {seed} (rerun with CONVEYOR_KILL_SEED={seed})")
    rng = random.Random(seed)
    world = lab.world(warehouse)
    env = ENVIRONMENT[warehouse]
    problems, finished, phases = [], 0, Counter()
    for kill in range(KILLS):
        command = ("run", "update")[kill % 2]
        template = world.before_run if command == "run" else world.before_update
        new = world.after_run if command == "run" else world.after_update
        place = lab.copy(template)
        # the kill comes at a random moment of the command's work, once its run has begun
        delay = rng.uniform(0.0, world.seconds[command])
        process = subprocess.Popen(
            [CONVEYOR, "-q", "-p", str(place.root), command, "--env", env],
            env={**os.environ, **place.env, "NO_COLOR": "1", "TERM": "dumb"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_a_running_run(place, process)
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=60)
        phase = "finished" if code != SIGKILLED else killed_in(place, command)
        phases[phase] += 1
        what = f"kill {kill} ({command} after {delay:.2f} s, {phase})"
        if code != SIGKILLED:
            finished += 1
            if code != 0:
                problems.append(f"{what}: finished before the kill with exit code {code}")
        found = state_problems(place, world.old, new, killed_run=False)
        if command == "run" and phase in ("load", "build", "check", "publish"):
            found += converged(lab, lab.copy(place), ("load", "--resume", "--env", env), new)
        found += converged(lab, place, (command, "--env", env), new)
        problems += [f"{what}: {p}" for p in found]
    tally = f"{KILLS - finished} killed ({dict(phases)}), {finished} finished first, {len(problems)} problems"
    print(f"random kills on {warehouse}: {tally}")
    assert not problems, "\n".join(problems)


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_resume_killed_in_turn_is_resumed(lab: Lab, warehouse: str) -> None:
    """A run killed mid-build, its `load --resume` killed mid-build too: the next resume finishes the same build."""
    if warehouse == "postgres" and not _reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    world = lab.world(warehouse)
    env = ENVIRONMENT[warehouse]
    place = lab.copy(world.before_run)
    code, out = lab.cli(place, "-q", "run", "--env", env, crash_at="build.relation.after:2")
    assert code == SIGKILLED, out
    code, out = lab.cli(place, "-q", "load", "--resume", "--env", env, crash_at="build.relation.after:1")
    assert code == SIGKILLED, out
    problems = state_problems(place, world.old, world.after_run)
    problems += converged(lab, place, ("load", "--resume", "--env", env), world.after_run)
    assert not problems, "\n".join(problems)


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_kept_build_is_not_published_over_an_update_that_died_after_committing(lab: Lab, warehouse: str) -> None:
    """An update killed after its commit changed the warehouse: an older kept build must not be resumed over it."""
    if warehouse == "postgres" and not _reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    world = lab.world(warehouse)
    env = ENVIRONMENT[warehouse]
    place = lab.copy(world.before_run)
    code, out = lab.cli(place, "-q", "load", "--env", env, crash_at="build.relation.after:2")  # a kept build
    assert code == SIGKILLED, out
    lab.ok(place, "-q", "extract")
    committed = "duckdb.update.after_commit" if warehouse == "duckdb" else "run.before_finish"
    code, out = lab.cli(place, "-q", "update", "--env", env, crash_at=committed)
    assert code == SIGKILLED, out
    assert place.digest() == world.after_update

    code, out = lab.cli(place, "-q", "load", "--resume", "--env", env)
    assert code == 2 and "cannot be resumed" in out, out
    assert place.digest() == world.after_update
