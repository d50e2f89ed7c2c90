"""The round trip every property test drives: generated table -> bootstrap -> extract -> load -> compare.

Conveyor is driven through its Python API exactly as a user's script would (``api.open_project``,
``bootstrap``, ``api.extract_tables``, ``api.load``, ``api.update``). What comes out is read
back independently: the committed extract's Parquet parts and the DuckDB warehouse through
duckdb, the PostgreSQL warehouse through psycopg. Each is compared, value by value and in
the canonical form of :mod:`kinds`, with what the upstream's own driver reads.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import strategies as st

from conveyor import api
from conveyor.bootstrap import bootstrap
from conveyor.lake.lake import Lake

from .kinds import Kind, canon

SOURCE = "up"
#: the lake of every project ``write_project`` writes: a folder of the project, or ``s3://bucket/...``
#: (the object-store variants in tests/s3 point it at a bucket; each project gets its own prefix)
LAKE = "lake"
Rows = list[tuple[Any, ...]]


@dataclass
class Col:
    name: str
    kind: Kind
    not_null: bool


@dataclass
class Table:
    """A generated upstream table: ``id`` (integer primary key) plus ``cols``; ``rows`` exclude the id."""

    name: str
    cols: list[Col]
    ids: list[int]
    rows: list[list[Any]]

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        head = ", ".join(f"{c.name!r} {c.kind.label}{' NOT NULL' if c.not_null else ''}" for c in self.cols)
        body = "\n".join(f"    {i}: {r!r}" for i, r in zip(self.ids, self.rows, strict=True))
        return f"Table({self.name}: id, {head}\n{body})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints examples with this
        printer.text(repr(self))


_NAME_STYLES: list[Callable[[int], str]] = [
    lambda i: f"c{i}",
    lambda i: f"c{i}",
    lambda i: f"C{i}_Mixed",
    lambda i: f"c{i} space",
    lambda i: f"c{i}_größe",
    lambda i: f'c{i}"q',
    lambda i: ["order", "select", "group", "user", "from", "table", "check", "limit"][i],
]


@st.composite
def tables(
    draw: st.DrawFn,
    vocab: Sequence[Kind],
    *,
    max_cols: int = 5,
    max_rows: int = 6,
    id_range: tuple[int, int] = (-(2**31), 2**31 - 1),
    prefix: str = "t",
) -> Table:
    """A table of 1..max_cols columns drawn from ``vocab`` and 0..max_rows rows biased to edge values."""
    kinds = draw(st.lists(st.sampled_from(list(vocab)), min_size=1, max_size=min(max_cols, 8)))
    cols = [Col(draw(st.sampled_from(_NAME_STYLES))(i), kind, draw(st.booleans())) for i, kind in enumerate(kinds)]
    low, high = id_range
    ids = draw(st.lists(st.sampled_from([low, high, 0, 1]) | st.integers(low, high), unique=True, max_size=max_rows))
    rows = [[draw(c.kind.values if c.not_null else st.none() | c.kind.values) for c in cols] for _ in ids]
    # a fresh name on every call: shrinking replays draws, and a reused name would meet old tables
    return Table(f"{prefix}_{uuid.uuid4().hex[:12]}", cols, ids, rows)


SPLIT_KEYS = {"int", "text", "char", "uuid", "date", "ts", "tstz"}


def split_settings(table: Table, partitions: int | None, pick: int, *, ctid: bool = False) -> dict[str, Any] | None:
    """``extract`` settings splitting into ``partitions`` by ``id`` or by one of the table's NOT NULL keys
    (text and uuid keys are split at quantiles, the others in ranges); with ``ctid``, also by no key at all
    (PostgreSQL's physical ranges). ``pick`` chooses among them."""
    if not partitions:
        return None
    keys: list[str | None] = ["id"]
    keys += [c.name for c in table.cols if c.not_null and c.kind.key in SPLIT_KEYS and not c.kind.probe]
    keys += [None] if ctid else []
    key = keys[pick % len(keys)]
    return {"partitions": partitions, **({"split_by": key} if key else {})}


def apply_split(root: Path, relation: str, extract: dict[str, Any] | None) -> None:
    if extract:
        edit_design(root, relation, lambda d: d.setdefault("extract", {}).update(extract))


# ------------------------------------------------------------------------------ the project


def write_project(root: Path, source_type: str, dsn: str, include: list[str], pg_warehouse: str) -> Path:
    """A project with source ``up``, a DuckDB environment ``duck`` (default) and a PostgreSQL one ``pg``."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "name": "differential",
        "sources": {SOURCE: {"type": source_type, "dsn": dsn, "include": include}},
        "lake": {"path": LAKE if "://" not in LAKE else f"{LAKE}/{root.name}", "part_rows": 1000, "keep": 20},
        "environments": {
            "duck": {"type": "duckdb", "dsn": "wh.duckdb"},
            "pg": {"type": "postgres", "dsn": pg_warehouse, "keep_backup": False},
        },
        "default_environment": "duck",
        "defaults": {"jobs": 2, "batch_rows": 1024, "retry": {"attempts": 1}},
    }
    (root / "conveyor.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return root


def bootstrap_one(root: Path) -> str:
    """Bootstrap the project (one upstream table) and return the design's relation name."""
    report = bootstrap(api.open_project(root))
    assert report.ok, f"bootstrap failed: {report.to_json()}"
    created = report.with_action("created")
    assert len(created) == 1, report.to_json()
    return created[0].table


def design_file(root: Path, relation: str) -> Path:
    schema, table = relation.split(".")
    return root / "schemas" / schema / f"{table}.yaml"


def edit_design(root: Path, relation: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    path = design_file(root, relation)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return doc


def extract_ok(root: Path, *, full: bool = False) -> api.Outcome:
    outcome = api.extract_tables(api.open_project(root), full=full)
    assert outcome.extract is not None
    failed = {r.relation: r.error for r in outcome.extract.failed}
    assert outcome.ok, f"extract failed: {failed}"
    return outcome


def load_ok(root: Path, env: str) -> api.Outcome:
    outcome = api.load(api.open_project(root), env=env)
    build = outcome.build
    assert outcome.ok, f"load into {env} failed: {build.errors if build else None} {build.reason if build else ''}"
    return outcome


def update_ok(root: Path, env: str) -> api.Outcome:
    outcome = api.update(api.open_project(root), env=env)
    build = outcome.build
    assert outcome.ok, f"update of {env} failed: {build.errors if build else None} {build.reason if build else ''}"
    return outcome


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ reading back


def dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select_list(cols: Sequence[Col], dialect: str) -> str:
    """``id`` and every column as the ``dialect`` reader reads it (probes, json as text on PostgreSQL)."""
    exprs = ["id"]
    for col in cols:
        kind, quoted = col.kind, dq(col.name)
        if kind.probe:
            exprs.append(kind.probe[dialect].format(c=quoted))
        elif dialect == "postgres" and kind.key.endswith("json"):
            exprs.append(f"{quoted}::text" if not kind.key.startswith("array:") else f"{quoted}::text[]")
        else:
            exprs.append(quoted)
    return ", ".join(exprs)


def duck_rows(database: str | None, sql: str) -> Rows:
    con = duckdb.connect(database or ":memory:", read_only=database is not None)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).fetchall()
    finally:
        con.close()


def lake_rows(root: Path, relation: str, lake_table: str, cols: Sequence[Col]) -> Rows:
    """The newest committed extract's rows, read from its Parquet parts by pyarrow (ordered by id).

    pyarrow, not DuckDB: DuckDB reads a Parquet decimal wider than 38 digits as a double.
    Probed columns (dates Python cannot hold) are read as their day number, like the probes.
    """
    manifest = Lake(api.open_project(root).lake_location).latest(SOURCE, relation)
    assert manifest is not None, f"no committed extract of {relation} ({lake_table} upstream)"
    filesystem, paths = manifest.arrow_files()
    parts = [pq.read_table(p, filesystem=filesystem) for p in paths]
    if not parts:
        return []
    table = pa.concat_tables(parts).sort_by("id")
    columns = [table.column("id").to_pylist()]
    for col in cols:
        data = table.column(col.name)
        if col.kind.probe:
            data = data.cast(pa.int32())
        columns.append(data.to_pylist())
    return list(zip(*columns, strict=True))


def duckdb_rows(root: Path, relation: str, cols: Sequence[Col]) -> Rows:
    schema, table = relation.split(".")
    sql = f"SELECT {select_list(cols, 'duckdb')} FROM {dq(schema)}.{dq(table)} ORDER BY id"
    return duck_rows(str(root / "wh.duckdb"), sql)


def pg_rows(dsn: str, relation: str, cols: Sequence[Col]) -> Rows:
    schema, table = relation.split(".")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        sql = f"SELECT {select_list(cols, 'postgres')} FROM {dq(schema)}.{dq(table)} ORDER BY id"
        return conn.execute(sql.encode()).fetchall()


def compare(where: str, cols: Sequence[Col], expected: Rows, actual: Rows, *, exact_json: bool = False) -> None:
    """Row by row (ordered by id), column by column, in canonical form; names the first difference."""
    assert [r[0] for r in actual] == [r[0] for r in expected], (
        f"{where}: ids {[r[0] for r in actual]}, expected {[r[0] for r in expected]}"
    )
    for row_e, row_a in zip(expected, actual, strict=True):
        for index, col in enumerate(cols, start=1):
            key = "int" if col.kind.probe else col.kind.key
            try:
                want = canon(key, row_e[index], exact_json=exact_json)
            except TypeError as exc:  # the reference itself: a harness problem, not Conveyor's
                raise RuntimeError(f"upstream read of {col.name!r} ({col.kind.label}): {exc}") from None
            try:
                got = canon(key, row_a[index], exact_json=exact_json)
            except TypeError as exc:
                raise AssertionError(
                    f"{where}: row id={row_e[0]} column {col.name!r} ({col.kind.label}): {exc}; "
                    f"upstream {row_e[index]!r}"
                ) from None
            assert got == want, (
                f"{where}: row id={row_e[0]} column {col.name!r} ({col.kind.label}): "
                f"got {row_a[index]!r}, upstream driver read {row_e[index]!r}"
            )


def check_everywhere(
    root: Path, relation: str, lake_table: str, cols: Sequence[Col], expected: Rows, pg_warehouse: str
) -> None:
    """Lake, then DuckDB, then PostgreSQL: each must equal the upstream driver's read."""
    compare("lake (Parquet)", cols, expected, lake_rows(root, relation, lake_table, cols), exact_json=True)
    load_ok(root, "duck")
    compare("DuckDB warehouse", cols, expected, duckdb_rows(root, relation, cols), exact_json=True)
    load_ok(root, "pg")
    compare("PostgreSQL warehouse", cols, expected, pg_rows(pg_warehouse, relation, cols))
