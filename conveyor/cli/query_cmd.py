"""``conveyor query``: look at what a warehouse holds, without another client."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import click

from conveyor import api
from conveyor.cli.app import Options, pass_options
from conveyor.cli.output import print_table, stdout


@click.command(name="query")
@click.argument("sql")
@click.option("--env", "-e", help="The warehouse environment (default: default_environment).")
@click.option(
    "--limit", "-n", type=click.IntRange(1, 1_000_000), default=100, show_default=True, help="At most this many rows."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@pass_options
def query(options: Options, sql: str, env: str | None, limit: int, fmt: str) -> None:
    """Run one read-only SQL query against an environment's published warehouse and print the rows.

    The connection is read-only: the query cannot change the warehouse. Values print
    exactly (decimals keep every digit, timestamps their microseconds and zone); NULL
    prints as an empty cell in a table or CSV and as null in JSON.

    \b
    conveyor query "FROM marts.revenue_by_country LIMIT 10"
    conveyor query "SELECT count(*) FROM shop.orders" --env production --format json
    """
    result = api.query(api.open_project(options.project_dir), sql, env=env, limit=limit)
    if fmt == "json":
        rows = [dict(zip(result.columns, map(_json_value, row), strict=True)) for row in result.rows]
        sys.stdout.write(json.dumps({"columns": result.columns, "rows": rows, "more": result.more}, indent=2) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in result.rows])
        return
    if not result.columns:
        stdout.print("The statement returned no rows.")
        return
    cells = [[_text(v) for v in row] for row in result.rows]
    print_table(result.columns, cells, flexible=frozenset(result.columns), drop_empty=False)
    if result.more:
        stdout.print(f"(first {limit} rows; --limit shows more)")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        return str(value)  # exact: a JSON number would go through a float in most readers
    return _text(value)
