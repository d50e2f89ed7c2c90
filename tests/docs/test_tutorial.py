"""docs/tutorial.md works as written: its shell blocks run, in order, against a fresh PostgreSQL
database holding the two tables it assumes, with the console script on PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from testkit.services import pg_database

pytestmark = pytest.mark.postgres

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"


def shell_blocks(text: str) -> list[str]:
    """The ```sh blocks, in order, without the one that sets the placeholder DSN."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [b for b in blocks if "# tutorial: setup" not in b]


@pytest.fixture
def database() -> Iterator[str]:
    with pg_database("conveyor_tutorial") as dsn, psycopg.connect(dsn, autocommit=True) as con:
        con.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, country char(2));"
            "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,"
            " amount numeric(10,2) NOT NULL, placed_at timestamptz NOT NULL);"
            "INSERT INTO customers (name, country) SELECT 'customer ' || g, 'DE' FROM generate_series(1, 25) g;"
            "INSERT INTO orders (customer_id, amount, placed_at)"
            " SELECT 1 + g % 25, g * 0.5, now() - g * interval '1 day' FROM generate_series(1, 200) g;"
        )
        yield dsn


def test_every_command_of_the_tutorial_runs(tmp_path: Path, database: str) -> None:
    script = "set -euo pipefail\n" + "\n".join(shell_blocks(TUTORIAL.read_text()))
    env = {**os.environ, "DATABASE_URL": database, "COLUMNS": "120", "NO_COLOR": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # as after `source .venv/bin/activate`
    env.pop("CONVEYOR_PROJECT", None)
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Created a Conveyor project in acme reading postgres source shop:" in out
    assert "shop.customers" in out and "shop.orders" in out
    assert "analytics.best_customers" in out and "no problems" in out
    assert "Installed pipeline nightly" in out
    assert (tmp_path / "acme" / "warehouse").is_dir()
