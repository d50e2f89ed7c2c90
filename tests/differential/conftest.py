"""Fixtures of the differential suites: real upstream databases, two warehouses, hypothesis profiles.

Hypothesis examples share one database per engine for the whole session (a fixture is not
re-run between examples): every example makes its own uniquely named upstream table and
its own project folder. Both warehouses are loaded by every example: a DuckDB file inside
the project and one PostgreSQL warehouse database shared by the session (each load replaces
the schemas it loads, so examples do not see each other's tables).

Profiles (``CONVEYOR_DIFFERENTIAL_PROFILE``):

* ``differential-ci`` (default): few examples, derandomized, not shrunk, so ``make test`` is
  quick and a strict xfail does not flicker; a falsifying example prints its
  ``@reproduce_failure``.
* ``differential-thorough``: 20x the examples from a random seed, printed in pytest's header
  (``CONVEYOR_DIFFERENTIAL_SEED=N`` replays the run); run it by hand to hunt, e.g.
  ``CONVEYOR_DIFFERENTIAL_PROFILE=differential-thorough pytest tests/differential``.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from testkit.services import MY_ADMIN, my_database, pg_database

_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
# no shrinking in CI: an example costs about a second, so shrinking a failure takes minutes (a strict
# xfail fails on every run); the printed @reproduce_failure replays it, the thorough profile shrinks it
settings.register_profile(
    "differential-ci",
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_QUIET,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.register_profile(
    "differential-thorough", max_examples=200, deadline=None, print_blob=True, suppress_health_check=_QUIET
)


PROFILE = os.environ.get("CONVEYOR_DIFFERENTIAL_PROFILE", "differential-ci")
#: the seed of a randomized (thorough) run, printed in pytest's header; set it again to replay a run
SEED = int(os.environ.get("CONVEYOR_DIFFERENTIAL_SEED") or random.randrange(2**32))


def profile(examples: int | None = None) -> Callable[[Any], Any]:
    """Decorator: the chosen profile, ``examples`` scaled by it (the CI default is 10), and the run's seed."""
    chosen = settings.get_profile(PROFILE)
    if examples is not None:
        chosen = settings(chosen, max_examples=max(1, round(examples * chosen.max_examples / 10)))

    def apply(test: Any) -> Any:
        test = chosen(test)
        return test if chosen.derandomize else seed(SEED)(test)

    return apply


def pytest_report_header() -> str:
    if settings.get_profile(PROFILE).derandomize:
        return f"differential: profile {PROFILE} (derandomized)"
    return f"differential: profile {PROFILE}, seed {SEED} (replay: CONVEYOR_DIFFERENTIAL_SEED={SEED})"


def scratch_dir(prefix: str = "diff") -> Path:
    """A fresh folder for one hypothesis example (tmp_path is one folder per test, not per example)."""
    base = Path(tempfile.gettempdir()) / "conveyor-differential"
    base.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix + "-", dir=base))


def _pg_database(prefix: str) -> Iterator[str]:
    with pg_database(prefix) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def pg_upstream_dsn() -> Iterator[str]:
    """A throw-away PostgreSQL database holding the upstream tables of the session."""
    yield from _pg_database("conveyor_diff_up")


@pytest.fixture(scope="session")
def pg_warehouse_dsn() -> Iterator[str]:
    """A throw-away PostgreSQL database every example also loads (environment ``pg``)."""
    yield from _pg_database("conveyor_diff_wh")


@pytest.fixture(scope="session")
def pg_up(pg_upstream_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit psycopg connection to the upstream database, session time zone UTC."""
    with psycopg.connect(pg_upstream_dsn, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


@pytest.fixture(scope="session")
def my_upstream_db() -> Iterator[str]:
    """A throw-away MariaDB database (utf8mb4, binary collation) holding the upstream tables of the session."""
    with my_database("conveyor_diff_up", collation="utf8mb4_bin") as name:
        yield name


@pytest.fixture(scope="session")
def my_up(my_upstream_db: str) -> Iterator[pymysql.connections.Connection]:
    """An autocommit pymysql connection to the upstream database, session time zone UTC."""
    conn = pymysql.connect(
        **MY_ADMIN, database=my_upstream_db, autocommit=True, init_command="SET time_zone = '+00:00'"
    )
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_warehouse_sql(pg_warehouse_dsn: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """``sql(statement, params)`` on the PostgreSQL warehouse (autocommit, UTC)."""
    with psycopg.connect(pg_warehouse_dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")

        def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
            cursor = conn.execute(statement.encode(), params)
            return cursor.fetchall() if cursor.description else []

        yield run
