"""The bare floor: one CREATE TABLE AS over read_parquet into a fresh DuckDB file.

    python bench/load_duckdb/bare.py DATABASE.duckdb TABLE PART.parquet [PART.parquet ...]

Removes the database file, connects, runs ``CREATE TABLE <table> AS SELECT * FROM
read_parquet([...])`` and closes (DuckDB checkpoints on close). Nothing else: no schema
checks, no typed DDL, no atomic publish.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb


def main() -> None:
    database, table, parts = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    for leftover in (database, Path(f"{database}.wal")):
        leftover.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    files = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in parts) + "]"
    con = duckdb.connect(str(database))
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet({files})")
    con.close()


if __name__ == "__main__":
    main()
