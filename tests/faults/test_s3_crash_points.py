"""Crash points with the lake on an S3-compatible store: SIGKILL at each step of a commit to the bucket.

The local suite (test_crash_points.py) copies a template project per case; a bucket cannot be
copied with a project folder, so each case here builds its own: the test project with
``lake.path: s3://<fresh bucket>/lake`` (moto on loopback, reached through the standard AWS
environment only), one clean ``conveyor run``, then its upstream changed (more products, so
their extract has several parts; new orders, an increment). Then the run is killed at one
point of its commit to the store:

- ``lake.part.mid_write``: a part is half written (its upload not completed);
- ``lake.part.after_close:2``: between parts, some of an extract's parts are in the bucket;
- ``lake.upload.after_part:2``: the same for parts a ``command`` job staged on local disk
  (products are extracted by one), uploaded one by one;
- ``lake.manifest.before_rename``: every part is in the bucket, the manifest is not;
- ``lake.manifest.after_rename``: the manifest is in the bucket, the tracking store has not heard;
- ``extract.watermark.after_store``: the tracking store knows, retention has not run;
- ``lake.prune.after_manifest`` / ``lake.prune.mid_parts``: retention is half done;
- ``build.relation.after:3``: the load reads the bucket's parts, then dies (``load --resume``).

And checks what the local suite checks: every manifest in the bucket names parts that are
there, match their sha256 and hold its rows (nothing uncommitted is visible: ``Lake.latest``
and ``Lake.committed`` trust only manifests, and so does the load), the warehouse is entirely
old or entirely new, the watermark is not ahead of the committed parts, no run is left
``running``, and a rerun converges to the warehouse of an uninterrupted run, leaving no
object in the bucket outside a committed extract (the next writer of each relation removed
what the killed one left).
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pytest
from testkit.s3 import S3Server
from testkit.services import reachable

from conveyor.lake.lake import Lake
from conveyor.lake.manifest import MANIFEST
from conveyor.tracking.store import TrackingStore, default_dsn
from tests.conftest import build_project, warehouse_digest
from tests.faults.forkcli import ForkServer
from tests.faults.test_crash_points import (
    ENVIRONMENT,
    ORDERS_INCREMENTAL,
    SETTINGS,
    SIGKILLED,
    Databases,
    change_upstream,
    pg_digest,
    stored_watermark,
)


@dataclass(frozen=True)
class Point:
    name: str
    warehouses: tuple[str, ...] = ("duckdb", "postgres")
    resume: bool = False  # killed while loading: `load --resume` must finish the run's load
    leaves: bool = False  # the kill leaves objects outside a committed extract (for the next writer to remove)
    args: tuple[str, ...] = ()  # more arguments of the killed run


POINTS = [
    Point("lake.part.mid_write"),
    Point("lake.part.after_close:2", leaves=True, args=("--jobs", "1")),  # customers: 2 of 3 parts
    Point("lake.upload.after_part:2", leaves=True),
    Point("lake.manifest.before_rename", leaves=True),
    Point("lake.manifest.after_rename"),
    Point("extract.watermark.after_store"),
    Point("lake.prune.after_manifest", leaves=True),
    Point("lake.prune.mid_parts"),
    Point("build.relation.after:3", resume=True),
    Point("pg.copy.batch:2", ("postgres",), resume=True),  # COPY streams parts read from the bucket
]

CASES = [
    pytest.param(
        point, warehouse, id=f"{warehouse}-{point.name}", marks=[pytest.mark.postgres] * (warehouse != "duckdb")
    )
    for point in POINTS
    for warehouse in point.warehouses
]

MORE_PRODUCTS = 2500
"""Products and customers added upstream: with ``part_rows: 1000`` their extracts have three parts."""

PRODUCTS_COMMAND = f"""\
name: shop.products
columns:
  - {{name: id, type: integer}}
  - {{name: title, type: text}}
  - {{name: in_stock, type: boolean}}
extract:
  job_type: command
  command: {sys.executable} write_products.py
"""
"""Products are extracted by a ``command`` job: its parts are staged on local disk, then uploaded."""

WRITE_PRODUCTS = """\
import os, sqlite3
import pyarrow as pa, pyarrow.parquet as pq
schema = pa.schema([("id", pa.int32()), ("title", pa.string()), ("in_stock", pa.bool_())])
rows = sqlite3.connect("upstream.db").execute("SELECT id, title, in_stock FROM products ORDER BY id").fetchall()
for n, start in enumerate(range(0, max(len(rows), 1), 1000)):
    chunk = rows[start:start + 1000]
    columns = list(zip(*chunk)) if chunk else [[], [], []]
    table = pa.table([pa.array(columns[0], pa.int32()), pa.array(columns[1], pa.string()),
                      pa.array([None if v is None else bool(v) for v in columns[2]], pa.bool_())], schema=schema)
    pq.write_table(table, os.path.join(os.environ["CONVEYOR_EXTRACT_DIR"], f"part-{n:05d}.parquet"))
"""


def change_more(root: Path) -> None:
    change_upstream(root)
    con = sqlite3.connect(root / "upstream.db")
    con.executemany("INSERT INTO products VALUES (?, ?, ?)", [(1000 + i, f"p{i}", i % 2) for i in range(MORE_PRODUCTS)])
    con.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
        [(1000 + i, f"c{i}", f"c{i}@example.com", i % 2, None, i / 100) for i in range(MORE_PRODUCTS)],
    )
    con.commit()
    con.close()


@dataclass
class Place:
    root: Path
    bucket: str
    warehouse: str = "duckdb"
    database: str | None = None  # the PostgreSQL database of the ``pg`` environment

    @property
    def lake(self) -> Lake:
        return Lake(f"s3://{self.bucket}/lake")

    @property
    def env(self) -> dict[str, str]:
        return {"CRASH_PG_DSN": f"postgresql://postgres@127.0.0.1:5432/{self.database}"} if self.database else {}

    @property
    def target(self) -> tuple[str, str]:
        """The ``--env`` option naming the warehouse the commands load."""
        return ("--env", ENVIRONMENT[self.warehouse])

    def digest(self) -> dict[str, str]:
        if self.warehouse == "postgres":
            return pg_digest(self.env["CRASH_PG_DSN"])
        path = self.root / "warehouse.duckdb"
        return warehouse_digest(path) if path.exists() else {}


class Lab:
    def __init__(self, base: Path, server: ForkServer, s3: S3Server, databases: Databases):
        self.base, self.server, self.s3, self.databases = base, server, s3, databases
        self.old: dict[str, dict[str, str]] = {}
        self.new: dict[str, dict[str, str]] = {}

    def reference(self, warehouse: str) -> None:
        """The warehouse before and after a clean run over the changed upstream (once per warehouse)."""
        if warehouse in self.new:
            return
        reference = self.place(warehouse)
        self.old[warehouse] = reference.digest()
        self.ok(reference, "-q", "run", *reference.target)
        self.new[warehouse] = reference.digest()
        assert self.old[warehouse] != self.new[warehouse]

    def place(self, warehouse: str) -> Place:
        """A project after one clean run, its upstream changed since."""
        bucket = self.s3.create_bucket()
        settings = SETTINGS.replace("  path: lake\n", f"  path: s3://{bucket}/lake\n")
        designs = {"shop/orders.yaml": ORDERS_INCREMENTAL, "shop/products.yaml": PRODUCTS_COMMAND}
        root = build_project(self.base / f"p-{uuid.uuid4().hex[:8]}", settings=settings, designs=designs)
        (root / "write_products.py").write_text(WRITE_PRODUCTS)
        place = Place(root, bucket, warehouse, self.databases.create() if warehouse == "postgres" else None)
        self.ok(place, "-q", "run", *place.target)
        change_more(root)
        return place

    def cli(self, place: Place, *args: str, crash_at: str | None = None) -> tuple[int, str]:
        env = {**self.s3.env, **place.env}
        if crash_at:
            env["CONVEYOR_CRASH_AT"] = crash_at
        return self.server(place.root, *args, env=env)

    def ok(self, place: Place, *args: str) -> None:
        code, out = self.cli(place, *args)
        assert code == 0, f"conveyor {' '.join(args)} failed ({code}):\n{out}"


@pytest.fixture(scope="module")
def lab(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    server, databases = ForkServer(), Databases()
    try:
        yield Lab(tmp_path_factory.mktemp("s3crash"), server, s3_server, databases)
    finally:
        server.close()
        databases.drop_all()


@pytest.fixture
def aws(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process reads the bucket too (the checks): the same AWS environment as the commands."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)


# ---------------------------------------------------------------------------- the invariants


def lake_problems(lake: Lake) -> list[str]:
    """What a reader trusting manifests would find broken in the bucket: missing, changed or short parts."""
    problems = []
    for source, relation in lake.tables():
        if not lake.chain(source, relation):
            problems.append(f"partial extract: {relation} has no full extract to load")
        for manifest in lake.committed(source, relation):
            present = {o.key for o in lake.store.objects(manifest.key)}
            for part, key in zip(manifest.files, manifest.part_keys(), strict=True):
                if key not in present:
                    problems.append(f"partial extract: {relation} {manifest.extract_id} lacks {part.path}")
                    continue
                with lake.store.open_input(key) as handle:
                    data = handle.read()
                if hashlib.sha256(data).hexdigest() != part.sha256:
                    problems.append(f"partial extract: {relation} {manifest.extract_id} {part.path} differs")
            if not problems and manifest.dataset().count_rows() != manifest.rows:
                problems.append(f"partial extract: {relation} {manifest.extract_id} does not hold its rows")
    return problems


def leftovers(lake: Lake) -> list[str]:
    """Objects under the lake's data that belong to no committed extract."""
    committed = {m.key for s, r in lake.tables() for m in lake.committed(s, r)}
    return [o.key for o in lake.store.objects(lake.base) if o.key.rsplit("/", 1)[0] not in committed]


def max_cursor(lake: Lake) -> int | None:
    found = None
    for manifest in lake.committed("shop", "shop.orders"):
        column = manifest.dataset().to_table(columns=["id"]).column("id")
        top = pc.max(column).as_py()
        if top is not None and (found is None or top > found):
            found = top
    return found


def state_problems(lab: Lab, place: Place) -> list[str]:
    problems = lake_problems(place.lake)
    digest = place.digest()
    if digest not in (lab.old[place.warehouse], lab.new[place.warehouse]):
        problems.append("mixed publish: neither the old nor the new warehouse")
    store = TrackingStore.open(default_dsn(place.root))
    try:
        mark, top = stored_watermark(store, "shop.orders"), max_cursor(place.lake)
        if mark is not None and (top is None or mark > top):
            problems.append(f"watermark ahead: stored {mark}, committed parts reach {top}")
        runs = store.list_runs(limit=100)
        problems += [f"run left running: {r.command} {r.run_id}" for r in runs if r.status == "running"]
        problems += [
            f"extract left running: {e.table_name}" for e in store.list_extracts(limit=100) if e.status == "running"
        ]
        if runs[0].status != "abandoned":
            problems.append(f"the killed run reads as {runs[0].status}, not abandoned")
    finally:
        store.close()
    return problems


def converged(lab: Lab, place: Place, *args: str) -> list[str]:
    code, out = lab.cli(place, "-q", *args, *place.target)
    if code != 0:
        return [f"rerun did not converge: conveyor {' '.join(args)} exited {code}: {out.strip()[-600:]}"]
    problems = lake_problems(place.lake)
    if place.digest() != lab.new[place.warehouse]:
        problems.append(f"rerun did not converge: conveyor {' '.join(args)} left other checksums than a clean run")
    if args[0] == "run":
        store = TrackingStore.open(default_dsn(place.root))
        try:
            mark, top = stored_watermark(store, "shop.orders"), max_cursor(place.lake)
        finally:
            store.close()
        if mark != top:
            problems.append(f"rerun did not converge: watermark {mark}, committed parts reach {top}")
        problems += [f"rerun left an object outside a committed extract: {key}" for key in leftovers(place.lake)]
    return problems


# ---------------------------------------------------------------------------- the cases


@pytest.mark.parametrize(("point", "warehouse"), CASES)
def test_a_crash_while_committing_to_s3_leaves_old_or_new_and_a_rerun_converges(
    lab: Lab, aws: None, point: Point, warehouse: str
) -> None:
    if warehouse == "postgres" and not reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    lab.reference(warehouse)
    place = lab.place(warehouse)
    before = {(s, r): len(place.lake.committed(s, r)) for s, r in place.lake.tables()}
    code, out = lab.cli(place, "-q", "run", *point.args, *place.target, crash_at=point.name)
    assert code == SIGKILLED, f"the crash point {point.name} was not reached (exit {code}):\n{out}"

    problems = state_problems(lab, place)
    if point.leaves:
        assert leftovers(place.lake), f"the kill at {point.name} left nothing for the next writer to remove"
    if point.name == "lake.part.after_close:2":
        left = [k for k in leftovers(place.lake) if "/shop.customers/" in k]
        assert [k.rsplit("/", 1)[1] for k in left] == ["part-00000.parquet", "part-00001.parquet"], left
    if point.name == "lake.manifest.after_rename":
        # the manifest is committed: readers see the extract, though the tracking store does not name it
        after = {(s, r): len(place.lake.committed(s, r)) for s, r in place.lake.tables()}
        assert any(after[key] > count for key, count in before.items()), "the committed manifest is not visible"
    if point.resume:
        problems += converged(lab, place, "load", "--resume")
    problems += converged(lab, place, "run")
    assert not problems, "\n".join(problems)


def test_uncommitted_parts_are_invisible_to_readers_and_a_load(lab: Lab, aws: None) -> None:
    """Killed with every part in the bucket and no manifest: Lake.latest and a load still see the old extract."""
    lab.reference("duckdb")
    place = lab.place("duckdb")
    before = {(s, r): place.lake.latest(s, r) for s, r in place.lake.tables()}
    code, out = lab.cli(place, "-q", "run", "--jobs", "1", crash_at="lake.manifest.before_rename")
    assert code == SIGKILLED, out
    lake = place.lake
    assert leftovers(lake), "the killed extract left no parts to hide"
    for (source, relation), manifest in before.items():
        latest = lake.latest(source, relation)
        assert latest is not None and manifest is not None
        assert latest.extract_id == manifest.extract_id  # nothing new committed: the first table died uncommitted
        assert all(not key.endswith(MANIFEST) for key in leftovers(lake))
    code, out = lab.cli(place, "-q", "load")
    assert code == 0, out
    assert place.digest() == lab.old["duckdb"]  # the load read only committed extracts: the old ones
    assert leftovers(lake)  # a load removes nothing; the next writer does
    assert not converged(lab, place, "run")


def test_s3_crash_points_are_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    section = text.split("## Crash points", 1)[1]
    for point in POINTS:
        assert f"`{point.name.partition(':')[0]}`" in section, point.name
