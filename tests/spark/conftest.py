"""Fixtures for the ``spark`` job type tests: shared databases, two projects, one lake each.

Every extract run starts a Spark application (a JVM, seconds), so the expensive tests share state:
one PostgreSQL and one MariaDB database per module, and two projects over the same
upstream tables, ``arrow/`` and ``spark/``, identical except for the job type. The Spark
tests run in local mode (``local[2]``) against the services on 127.0.0.1 (PostgreSQL:
user postgres, trust auth; MariaDB: root, no password) and are skipped when pyspark,
Java or a service is missing.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest
import yaml
from testkit.services import MY_ADMIN, PG_ADMIN, reachable

from conveyor import api
from conveyor.lake.lake import Lake
from conveyor.lake.manifest import Manifest

JARS = {"postgres": "/usr/share/java/postgresql.jar", "mysql": "/usr/share/java/mariadb-java-client.jar"}


def spark_missing() -> str | None:
    """Why Spark cannot run here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return 'pyspark is not installed (pip install -e ".[spark]")'
    if shutil.which("java") is None:
        return "java is not installed (apt-get install default-jre-headless)"
    return None


def needs_spark(engine: str) -> None:
    """Skip unless Spark, the engine's service and its JDBC driver are all here."""
    why = spark_missing()
    if why:
        pytest.skip(why)
    port = 5432 if engine == "postgres" else 3306
    if not reachable(port):
        pytest.skip(f"{engine} is not running on 127.0.0.1:{port}")
    if not Path(JARS[engine]).is_file():
        pytest.skip(f"{JARS[engine]} is missing (scripts/system-packages.sh installs it)")


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="module")
def pg_db() -> Iterator[str]:
    """DSN of a PostgreSQL database shared by one test module."""
    needs_spark("postgres")
    name = f"conveyor_sp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


@pytest.fixture(scope="module")
def my_db() -> Iterator[str]:
    """Name of a MariaDB database shared by one test module."""
    needs_spark("mysql")
    name = f"conveyor_sp_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(**MY_ADMIN, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def pg_run(dsn: str) -> Callable[..., list[tuple[Any, ...]]]:
    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            cur = conn.execute(statement.encode() if params is None else statement, params)
            return cur.fetchall() if cur.description else []

    return run


def my_run(database: str) -> Callable[..., list[tuple[Any, ...]]]:
    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(
            **MY_ADMIN, database=database, autocommit=True, init_command="SET time_zone = '+00:00', sql_mode = ''"
        )
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    return run


# --------------------------------------------------------------------------- projects


def write_project(
    root: Path,
    sources: dict[str, dict[str, Any]],
    designs: dict[str, dict[str, Any]],
    *,
    job_type: str,
    jobs: int = 2,
) -> Path:
    """A project with the given sources (all of ``job_type``) and designs ``{"src.table": body}``."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "name": "spark_test",
        "sources": {name: {**cfg, "job_type": job_type} for name, cfg in sources.items()},
        "lake": {"path": "lake", "part_rows": 1000, "keep": 5},
        "environments": {"dev": {"type": "duckdb", "dsn": "wh.duckdb"}},
        "defaults": {
            "jobs": jobs,
            "batch_rows": 1024,
            "retry": {"attempts": 2, "initial_delay": 0.1, "max_delay": 0.2},
        },
    }
    (root / "conveyor.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    for name, body in designs.items():
        write_design(root, name, body)
    return root


def write_design(root: Path, name: str, body: dict[str, Any]) -> Path:
    source, table = name.split(".")
    path = root / "schemas" / source / f"{table}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": name, **body}, sort_keys=False), encoding="utf-8")
    return path


def extract(root: Path, *selection: str, **kwargs: Any) -> api.Outcome:
    return api.extract_tables(api.open_project(root), selection, **kwargs)


def result_of(outcome: api.Outcome, relation: str) -> Any:
    assert outcome.extract is not None
    return next(r for r in outcome.extract.results if r.relation == relation)


def committed(root: Path, source: str, relation: str) -> list[Manifest]:
    return Lake(root / "lake").committed(source, relation)


def manifest_table(manifest: Manifest) -> pa.Table:
    """Every row of a committed extract, checked against the manifest."""
    tables = []
    for part, path in zip(manifest.files, manifest.paths(), strict=True):
        table = pq.read_table(path)
        assert table.num_rows == part.rows
        tables.append(table)
    table = pa.concat_tables(tables) if tables else manifest.arrow_schema.empty_table()
    assert table.num_rows == manifest.rows
    return table


def extract_state(root: Path) -> dict[str, Any]:
    store = api.open_tracking(api.open_project(root))
    try:
        return {row.table_name: row for row in store.extract_state()}
    finally:
        store.close()


def extract_attempts(root: Path, table: str) -> list[Any]:
    store = api.open_tracking(api.open_project(root))
    try:
        return store.list_extracts(table=table)
    finally:
        store.close()


# --------------------------------------------------------------------------- comparing


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b and type(a) is type(b))


def assert_same_content(arrow: pa.Table, spark: pa.Table, key: str) -> None:
    """Identical schemas and identical values, column by column (NaN equals NaN)."""
    assert spark.schema.equals(arrow.schema), f"schemas differ:\narrow: {arrow.schema}\nspark: {spark.schema}"
    arrow = arrow.sort_by(key)
    spark = spark.sort_by(key)
    assert arrow.num_rows == spark.num_rows
    for name in arrow.column_names:
        left = arrow.column(name).to_pylist()
        right = spark.column(name).to_pylist()
        bad = [(i, x, y) for i, (x, y) in enumerate(zip(left, right, strict=True)) if not _same(x, y)]
        assert not bad, f"column {name} differs (row, arrow, spark): {bad[:3]}"
