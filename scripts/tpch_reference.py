"""One-off: regenerate the TPC-H query texts and reference answers kept as test data.

Not run by the tests. The files it writes are committed under tests/differential/tpch/:

* ``queries/qNN.sql``: the 22 queries as DuckDB's tpch extension ships them
  (``tpch_queries()``), unchanged except for the trailing semicolon, which is dropped
  because a transformation file holds one statement;
* ``answers/sf0.01/qNN.csv``: DuckDB's answers to those queries over the very data the tests
  load: ``tpchgen-cli -s 0.01``, read into DuckDB with the specification's types. They are
  written in the format of the extension's own ``tpch_answers()`` (pipe-separated, a header
  line, NULL as an empty field, doubles in their shortest text, decimals with their scale),
  and the script checks them against ``tpch_answers()`` for sf 0.01: every answer has the
  same values (numbers compared by value: the extension prints ``sum_qty`` as ``380456``
  where DuckDB's decimal sum is ``380456.00``) except for the queries that print or filter
  on dbgen's generated text
  (addresses and comments), which tpchgen-cli generates differently from the extension's
  dbgen; those are listed in ``answers/sf0.01/DIFFERENCES.txt``.

The extension cannot be installed into the project's own DuckDB (no download at test time),
so this runs in a throw-away virtual environment outside the repository::

    python3 -m venv /tmp/tpchref
    /tmp/tpchref/bin/pip install duckdb==1.5.5 duckdb-extension-tpch==1.5.5
    /tmp/tpchref/bin/python scripts/tpch_reference.py .venv/bin/tpchgen-cli

The ``duckdb-extension-tpch`` wheel carries the compiled extension file
(``duckdb_extension_tpch/extensions/v<version>/tpch.duckdb_extension``), which is LOADed by path.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb  # type: ignore[import-not-found]
import duckdb_extension_tpch  # type: ignore[import-not-found]

OUT = Path(__file__).resolve().parent.parent / "tests" / "differential" / "tpch"
SCALE = 0.01


COLUMNS = {
    "region": "r_regionkey INTEGER, r_name VARCHAR, r_comment VARCHAR",
    "nation": "n_nationkey INTEGER, n_name VARCHAR, n_regionkey INTEGER, n_comment VARCHAR",
    "part": "p_partkey INTEGER, p_name VARCHAR, p_mfgr VARCHAR, p_brand VARCHAR, p_type VARCHAR, p_size INTEGER, "
    "p_container VARCHAR, p_retailprice DECIMAL(15,2), p_comment VARCHAR",
    "supplier": "s_suppkey INTEGER, s_name VARCHAR, s_address VARCHAR, s_nationkey INTEGER, s_phone VARCHAR, "
    "s_acctbal DECIMAL(15,2), s_comment VARCHAR",
    "partsupp": "ps_partkey INTEGER, ps_suppkey INTEGER, ps_availqty INTEGER, ps_supplycost DECIMAL(15,2), "
    "ps_comment VARCHAR",
    "customer": "c_custkey INTEGER, c_name VARCHAR, c_address VARCHAR, c_nationkey INTEGER, c_phone VARCHAR, "
    "c_acctbal DECIMAL(15,2), c_mktsegment VARCHAR, c_comment VARCHAR",
    "orders": "o_orderkey INTEGER, o_custkey INTEGER, o_orderstatus VARCHAR, o_totalprice DECIMAL(15,2), "
    "o_orderdate DATE, o_orderpriority VARCHAR, o_clerk VARCHAR, o_shippriority INTEGER, o_comment VARCHAR",
    "lineitem": "l_orderkey INTEGER, l_partkey INTEGER, l_suppkey INTEGER, l_linenumber INTEGER, "
    "l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), l_discount DECIMAL(15,2), l_tax DECIMAL(15,2), "
    "l_returnflag VARCHAR, l_linestatus VARCHAR, l_shipdate DATE, l_commitdate DATE, l_receiptdate DATE, "
    "l_shipinstruct VARCHAR, l_shipmode VARCHAR, l_comment VARCHAR",
}


def _field(value: object) -> str:
    """A value as tpch_answers() prints it."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _values(answer: str) -> list[list[str]]:
    """An answer's rows with numbers by value (the extension prints sum_qty as 380456, DuckDB 380456.00)."""
    rows = []
    for line in answer.split("\n")[1:]:
        cells = []
        for text in line.split("|"):
            try:
                cells.append(str(Decimal(text).normalize()))
            except InvalidOperation:
                cells.append(text)
        rows.append(cells)
    return rows


def _load(con: duckdb.DuckDBPyConnection, tool: str, folder: Path) -> None:
    subprocess.run([tool, "-s", str(SCALE), "--output-dir", str(folder), "-q"], check=True)
    for table, columns in COLUMNS.items():
        names = [c.split()[0] for c in columns.split(", ")]
        con.execute(f"CREATE TABLE {table} ({columns})")
        # every dbgen line ends with the delimiter: one empty trailing column, left out
        spec = ", ".join(f"'{n}': 'VARCHAR'" for n in [*names, "trailing"])
        con.execute(
            f"INSERT INTO {table} SELECT {', '.join(names)} FROM read_csv('{folder / (table + '.tbl')}', "
            f"delim='|', header=false, quote='', escape='', columns={{{spec}}})"
        )


def main(tool: str) -> int:
    folder = Path(duckdb_extension_tpch.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    con.execute(f"LOAD '{folder / 'tpch.duckdb_extension'}'")
    (OUT / "queries").mkdir(parents=True, exist_ok=True)
    answers = OUT / "answers" / f"sf{SCALE}"
    answers.mkdir(parents=True, exist_ok=True)
    queries = con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall()
    theirs = dict(con.execute("SELECT query_nr, answer FROM tpch_answers() WHERE scale_factor = ?", [SCALE]).fetchall())
    data = duckdb.connect()
    with tempfile.TemporaryDirectory() as tmp:
        _load(data, tool, Path(tmp))
    differ = []
    for number, query in queries:
        text = query.strip().removesuffix(";").rstrip() + "\n"
        (OUT / "queries" / f"q{number:02d}.sql").write_text(text, encoding="utf-8")
        cursor = data.execute(text)
        header = "|".join(d[0] for d in cursor.description)
        lines = [header, *("|".join(_field(v) for v in row) for row in cursor.fetchall())]
        answer = "\n".join(lines) + "\n"
        (answers / f"q{number:02d}.csv").write_text(answer, encoding="utf-8")
        if _values(answer) != _values(theirs[number]):
            differ.append(number)
    note = (
        "Queries whose answers over tpchgen-cli's data differ from duckdb's tpch_answers() for sf 0.01\n"
        "(they print or filter on generated text: addresses, comments):\n" + "".join(f"q{n:02d}\n" for n in differ)
    )
    (answers / "DIFFERENCES.txt").write_text(note, encoding="utf-8")
    print(f"wrote 22 queries and their sf{SCALE} answers below {OUT} (duckdb {duckdb.__version__}); differ: {differ}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "tpchgen-cli"))
