"""Every command on a Redshift environment prints Redshift SQL, or refuses up front with exit code 2.

The environment's DSN points at a closed port: a command that tried to reach the cluster
would fail differently (a connection error, exit code 1), so exit code 2 with the message
proves the refusal came first. Nothing may be written: not the lake, not the tracking store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlglot

REDSHIFT_ENV = "  rs:\n    type: redshift\n    dsn: postgresql://etl@127.0.0.1:1/dev\n"

TOTALS_DESIGN = """\
name: mart.customer_totals
kind: ctas
description: Order totals per customer
constraints:
  primary_key: [customer_id]
attributes:
  distribution: all
  sortkey: auto
"""

ORDERS_DESIGN = """\
name: shop.orders
columns:
  - {name: id, type: bigint}
  - {name: customer_id, type: bigint}
  - {name: amount, type: "decimal(10,2)"}
  - {name: ordered_at, type: timestamptz}
constraints:
  primary_key: [id]
attributes:
  distkey: customer_id
  sortkey: [ordered_at]
  encode: az64
"""


@pytest.fixture(scope="module")
def rs_project(
    tmp_path_factory: pytest.TempPathFactory, new_project: Callable[..., Path], cli: Callable[..., Any]
) -> Path:
    """One project for the module: the tests assert that none of them changes it."""
    root = new_project(
        tmp_path_factory.mktemp("rs") / "project",
        designs={"mart/customer_totals.yaml": TOTALS_DESIGN, "shop/orders.yaml": ORDERS_DESIGN},
    )
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text().replace("defaults:", REDSHIFT_ENV + "defaults:"))
    assert cli("extract", "-q", cwd=root).code == 0
    return root


def _state(root: Path) -> tuple[list[tuple[str, int]], int]:
    """The lake's files (path, size) and the number of runs the tracking store knows."""
    files = sorted((str(p.relative_to(root)), p.stat().st_size) for p in (root / "lake").rglob("*") if p.is_file())
    with sqlite3.connect(root / ".conveyor" / "tracking.db") as con:
        (runs,) = con.execute("SELECT count(*) FROM runs").fetchone()
    return files, runs


REFUSED = [
    (["load"], "load"),
    (["load", "--skip-copy"], "load"),
    (["load", "--dry-run"], "load"),
    (["run"], "load"),
    (["run", "--dry-run"], "load"),
    (["update", "shop.orders"], "update"),
    (["update", "--dry-run"], "update"),
    (["upgrade", "mart.top_customers"], "upgrade"),
    (["upgrade", "--dry-run"], "upgrade"),
    (["unload", "mart.report"], "unload"),
    (["unload", "--dry-run", "mart.report"], "unload"),
]


@pytest.mark.parametrize(("args", "operation"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_commands_that_need_the_cluster_refuse_up_front(
    rs_project: Path, cli: Callable[..., Any], args: list[str], operation: str
) -> None:
    before = _state(rs_project)
    result = cli(*args, "--env", "rs", cwd=rs_project)
    text = " ".join(result.stderr.split())
    assert result.code == 2, result
    assert f'Error: {operation} is not supported on the Redshift environment "rs" yet' in text
    assert "Nothing was changed." in text and "conveyor show ddl --env rs" in text
    assert "Traceback" not in result.stderr and "connect" not in text.lower()
    assert _state(rs_project) == before


def test_validate_with_the_redshift_warehouse_is_refused(rs_project: Path, cli: Callable[..., Any]) -> None:
    result = cli("validate", "--with-warehouse", "rs", "--skip-sources", cwd=rs_project)
    assert result.code == 2, result
    assert '"rs" is redshift' in " ".join(result.stdout.split()) and "[warehouse-unavailable]" in result.stdout


def test_a_pipeline_into_redshift_fails_before_extracting(rs_project: Path, cli: Callable[..., Any]) -> None:
    (rs_project / "pipelines").mkdir()
    (rs_project / "pipelines" / "nightly.yaml").write_text("schedule: manual\nenvironments: {primary: rs}\n")
    files, _ = _state(rs_project)
    result = cli("pipeline", "run", "nightly", cwd=rs_project)
    assert result.code == 1, result
    assert 'load is not supported on the Redshift environment "rs"' in " ".join((result.stdout + result.stderr).split())
    assert _state(rs_project)[0] == files  # nothing was extracted


def test_show_ddl_prints_redshift_ddl(rs_project: Path, cli: Callable[..., Any]) -> None:
    result = cli("show", "ddl", "shop.*", "mart.*", "--env", "rs", cwd=rs_project)
    assert result.code == 0, result
    statements = [s.strip() for s in result.stdout.split(";\n") if s.strip()]
    customers = next(s for s in statements if s.startswith('CREATE TABLE "shop"."customers"'))
    assert '"name" VARCHAR(65535)' in customers and '"balance" DECIMAL(10,2)' in customers
    assert '"created_at" TIMESTAMPTZ' in customers and '"id" BIGINT NOT NULL' in customers
    assert 'PRIMARY KEY ("id")' in customers  # informational on Redshift; Conveyor checks it
    orders = next(s for s in statements if s.startswith('CREATE TABLE "shop"."orders"'))
    assert orders.endswith('DISTSTYLE KEY\nDISTKEY ("customer_id")\nCOMPOUND SORTKEY ("ordered_at")')
    assert '"amount" DECIMAL(10,2) ENCODE az64' in orders
    totals = next(s for s in statements if s.startswith('CREATE TABLE "mart"."customer_totals"'))
    assert totals.startswith('CREATE TABLE "mart"."customer_totals"\nDISTSTYLE ALL\nSORTKEY AUTO\nAS SELECT')
    assert any(s.startswith('CREATE VIEW "mart"."report" AS') for s in statements)
    for statement in statements:
        if statement.startswith("CREATE TABLE") and "(\n" in statement:  # typed: one column per line
            body = statement.split("(\n", 1)[1].split("\n)", 1)[0]
            for line in body.splitlines():
                spelled = line.split()[1].split("(")[0].lower()
                assert spelled not in ("text", "jsonb", "bytea", "uuid", "numeric", "blob"), statement
        if "SORTKEY AUTO" not in statement:  # sqlglot does not know it
            assert sqlglot.parse_one(statement, read="redshift") is not None
