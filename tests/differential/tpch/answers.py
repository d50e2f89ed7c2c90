"""Reading TPC-H reference answers and comparing query results with them.

The reference answers (``answers/sf0.01/qNN.csv``) are DuckDB's tpch extension's, as it
holds them: pipe-separated, a header line, NULL as an empty field. How a result cell is
compared with the reference text (and the two warehouses with each other):

* NULL only equals an empty field;
* integers and decimals are compared **exactly, by value**: ``Decimal(text) == value``
  (``505822441.4861`` equals PostgreSQL's ``505822441.486100``; ``1995`` equals the
  ``numeric`` PostgreSQL's ``extract`` returns);
* binary doubles: the columns DuckDB computes as ``DOUBLE`` (:data:`DOUBLES`: q1's three
  averages, q8's ``mkt_share``, q14's ``promo_revenue``, q17's ``avg_yearly``; the test
  checks that DuckDB's results have no other double column) are the double's shortest text
  in the reference, and PostgreSQL computes them in ``numeric``: both sides are compared at
  **10 significant digits** (the one tolerance: the engines round differently past that);
* dates as ISO text; strings **exactly**, trailing blanks included (the reference has
  none where TPC-H declares ``char(n)``, and one in q15's ``s_address``, a varchar).

Row order is not compared (a CTAS does not keep ORDER BY): rows are compared as sorted
multisets of canonical tuples. The LIMITs of q2, q3, q10, q18 and q21 are still checked,
because the rows kept must be exactly the reference's.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUERIES = HERE / "queries"
ANSWERS = HERE / "answers" / "sf0.01"


def query_text(number: int) -> str:
    return (QUERIES / f"q{number:02d}.sql").read_text(encoding="utf-8")


def reference(number: int) -> tuple[list[str], list[list[str | None]]]:
    """Header and rows of a reference answer; an empty field is NULL."""
    lines = (ANSWERS / f"q{number:02d}.csv").read_text(encoding="utf-8").split("\n")
    header = lines[0].split("|")
    body = lines[1:-1] if lines[-1] == "" else lines[1:]
    return header, [[cell if cell != "" else None for cell in line.split("|")] for line in body]


#: result columns DuckDB computes as binary doubles: (query, column index); checked against DuckDB's results
DOUBLES = {(1, 6), (1, 7), (1, 8), (8, 1), (14, 0), (17, 0)}
#: result columns holding text (dates included): every other column is a number
TEXT_COLUMNS = {
    "l_returnflag", "l_linestatus", "s_name", "n_name", "p_mfgr", "s_address", "s_phone", "s_comment",
    "o_orderdate", "c_name", "c_address", "c_phone", "c_comment", "supp_nation", "cust_nation", "nation",
    "o_orderpriority", "l_shipmode", "p_brand", "p_type", "cntrycode",
}  # fmt: skip


def column_kinds(number: int, header: list[str]) -> list[str]:
    """Per column of query ``number``: ``double``, ``text`` or ``number`` (exact)."""
    return [
        "double" if (number, i) in DOUBLES else "text" if name in TEXT_COLUMNS else "number"
        for i, name in enumerate(header)
    ]


def _digits(value: Decimal | float) -> str:
    return f"{float(value):.10g}"


def _exact(value: Decimal) -> str:
    return str(value.normalize()) if value else "0"


def cell(value: Any, kind: str) -> str | None:
    """A result value in the canonical text of its column's kind (None for NULL)."""
    if value is None:
        return None
    if kind == "double" and isinstance(value, float | Decimal | int):
        return "~" + _digits(value)
    if kind == "number" and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return "=" + _exact(Decimal(value))
    if isinstance(value, date):
        return value.isoformat()
    return repr(value) if not isinstance(value, str) else value


def ref_cell(text: str | None, kind: str) -> str | None:
    """A reference field in the canonical text of its column's kind."""
    if text is None or kind == "text":
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return "~" + _digits(number) if kind == "double" else "=" + _exact(number)


def canonical(rows: list[tuple[Any, ...]], kinds: list[str]) -> list[tuple[str | None, ...]]:
    return sorted((tuple(cell(v, k) for v, k in zip(row, kinds, strict=True)) for row in rows), key=repr)


def canonical_reference(rows: list[list[str | None]], kinds: list[str]) -> list[tuple[str | None, ...]]:
    for row in rows:
        assert len(row) == len(kinds), f"reference row has {len(row)} fields, expected {len(kinds)}"
    return sorted((tuple(ref_cell(t, k) for t, k in zip(row, kinds, strict=True)) for row in rows), key=repr)


def differences(expected: list[Any], actual: list[Any], limit: int = 5) -> str:
    """A short description of how two canonical row lists differ."""
    missing = [r for r in expected if r not in actual]
    extra = [r for r in actual if r not in expected]
    lines = [f"{len(actual)} rows, expected {len(expected)}"]
    lines += [f"  missing    {r!r}" for r in missing[:limit]]
    lines += [f"  unexpected {r!r}" for r in extra[:limit]]
    return "\n".join(lines)
