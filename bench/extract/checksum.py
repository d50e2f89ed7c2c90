"""A content checksum of TPC-H ``lineitem``, the same for the upstream table and any Parquet copy.

Row counts alone miss a tool that rounds a decimal, shifts a date or drops a NULL, so every
output of the extract benchmark is checked value by value: DuckDB reads the rows, casts every
column to one canonical type, hashes each row and adds the hashes up (an order-free sum,
since tools write rows in different orders and files). The reference is the same query over
the upstream table itself, read through DuckDB's postgres / mysql scanner, computed once per
table and cached in ``bench/extract/checksum-<engine>-<schema>.json`` (git-ignored).

Text columns are compared with trailing blanks removed: ``char(n)`` values are blank-padded
upstream and the tools differ on whether they keep the padding (Conveyor's lake keeps it,
see docs/types.md); everything else must be equal to the last digit.
"""

from __future__ import annotations

import json
from pathlib import Path

# the 16 lineitem columns and the canonical type each is compared as
COLUMNS: dict[str, str] = {
    "l_orderkey": "BIGINT",
    "l_partkey": "BIGINT",
    "l_suppkey": "BIGINT",
    "l_linenumber": "BIGINT",
    "l_quantity": "DECIMAL(15,2)",
    "l_extendedprice": "DECIMAL(15,2)",
    "l_discount": "DECIMAL(15,2)",
    "l_tax": "DECIMAL(15,2)",
    "l_returnflag": "TEXT",
    "l_linestatus": "TEXT",
    "l_shipdate": "DATE",
    "l_commitdate": "DATE",
    "l_receiptdate": "DATE",
    "l_shipinstruct": "TEXT",
    "l_shipmode": "TEXT",
    "l_comment": "TEXT",
}

HERE = Path(__file__).resolve().parent


def _row_hash() -> str:
    parts = []
    for name, kind in COLUMNS.items():
        value = f"CAST({name} AS {kind})"
        parts.append(f"rtrim({value})" if kind == "TEXT" else value)
    return f"hash({', '.join(parts)})"


def checksum_sql(relation: str) -> str:
    """``count(*)`` and the sum of every row's hash over ``relation`` (a DuckDB table expression)."""
    return f"SELECT count(*) AS n, CAST(sum(CAST({_row_hash()} AS HUGEINT)) AS VARCHAR) AS h FROM {relation}"


def of_parquet(files: list[Path]) -> str:
    """``rows:hash`` of the Parquet ``files`` (one DuckDB query over all of them)."""
    import duckdb

    if not files:
        return "0:0"
    listing = ", ".join(f"'{f}'" for f in files)
    con = duckdb.connect()
    try:
        n, h = con.execute(checksum_sql(f"read_parquet([{listing}], union_by_name = true)")).fetchone()
    finally:
        con.close()
    return f"{n}:{h}"


def of_upstream(engine: str, schema: str, rows: int) -> str:
    """``rows:hash`` of the upstream ``<schema>.lineitem``, read through DuckDB's scanner; cached."""
    cache = HERE / f"checksum-{engine}-{schema}.json"
    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved.get("rows") == rows:
            return str(saved["checksum"])
    from peers import attach_upstream  # the peers' DuckDB and its scanners

    con, relation = attach_upstream(engine, schema)
    try:
        n, h = con.execute(checksum_sql(relation)).fetchone()
    finally:
        con.close()
    value = f"{n}:{h}"
    cache.write_text(json.dumps({"rows": rows, "checksum": value}) + "\n")
    return value
