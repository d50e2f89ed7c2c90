"""The raw floor: run a file of CREATE TABLE AS statements, in order, on one DuckDB connection.

    python bench/dag/raw.py STATEMENTS.sql DATABASE.duckdb

One statement per line, executed one after the other from this single Python process into a
fresh database file (removed first), after ``CREATE SCHEMA`` of every schema they name. The
connection is closed at the end (DuckDB checkpoints on close). No parsing, no dependency
analysis, no parallelism: the least any tool has to do to build the same tables.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb


def main() -> None:
    statements_file, database = Path(sys.argv[1]), Path(sys.argv[2])
    statements = [line for line in statements_file.read_text().splitlines() if line.strip()]
    for leftover in (database, Path(f"{database}.wal")):
        leftover.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    schemas = sorted({m.group(1) for s in statements if (m := re.match(r"CREATE TABLE (\w+)\.", s))})
    con = duckdb.connect(str(database))
    for schema in schemas:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for statement in statements:
        con.execute(statement)
    con.close()


if __name__ == "__main__":
    main()
