"""One-off: regenerate the TPC-H query texts and reference answers kept as test data.

Not run by the tests. The files it writes are committed under tests/differential/tpch/:

* ``queries/qNN.sql``: the 22 queries as DuckDB's tpch extension ships them
  (``tpch_queries()``), unchanged except for the trailing semicolon, which is dropped
  because a transformation file holds one statement;
* ``answers/sf0.01/qNN.csv``: the extension's reference answers for scale factor 0.01
  (``tpch_answers()``), pipe-separated with a header line, byte for byte as the extension holds
  them (NULL is an empty field: q17's single row is an empty line).

The extension cannot be installed into the project's own DuckDB (no download at test time),
so this runs in a throw-away virtual environment outside the repository::

    python3 -m venv /tmp/tpchref
    /tmp/tpchref/bin/pip install duckdb==1.5.5 duckdb-extension-tpch==1.5.5
    /tmp/tpchref/bin/python scripts/tpch_reference.py

The ``duckdb-extension-tpch`` wheel carries the compiled extension file
(``duckdb_extension_tpch/extensions/v<version>/tpch.duckdb_extension``), which is LOADed by path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb  # type: ignore[import-not-found]
import duckdb_extension_tpch  # type: ignore[import-not-found]

OUT = Path(__file__).resolve().parent.parent / "tests" / "differential" / "tpch"
SCALE = 0.01


def main() -> int:
    folder = Path(duckdb_extension_tpch.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    con.execute(f"LOAD '{folder / 'tpch.duckdb_extension'}'")
    (OUT / "queries").mkdir(parents=True, exist_ok=True)
    answers = OUT / "answers" / f"sf{SCALE}"
    answers.mkdir(parents=True, exist_ok=True)
    for number, query in con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall():
        text = query.strip().removesuffix(";").rstrip() + "\n"
        (OUT / "queries" / f"q{number:02d}.sql").write_text(text, encoding="utf-8")
    rows = con.execute("SELECT query_nr, answer FROM tpch_answers() WHERE scale_factor = ? ORDER BY 1", [SCALE])
    for number, answer in rows.fetchall():
        # kept byte for byte: q17's one row is NULL, an empty line after the header
        (answers / f"q{number:02d}.csv").write_text(answer, encoding="utf-8")
    print(f"wrote 22 queries and their sf{SCALE} answers below {OUT} (duckdb {duckdb.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
