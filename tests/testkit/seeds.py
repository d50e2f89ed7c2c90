"""Seed projects and generated CSV rows for the seed tests (DuckDB and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SEED_SOURCE = "  ref:\n    type: seed\n    dsn: seeds/ref\n"

RATES_DESIGN = """\
name: ref.rates
description: Exchange rates, a seed
columns:
  - {name: code, type: text, not_null: true}
  - {name: amount, type: 'decimal(18,4)'}
  - {name: valid_at, type: timestamptz}
  - {name: local_at, type: timestamp}
  - {name: note, type: text}
  - {name: active, type: boolean}
  - {name: units, type: bigint}
constraints:
  primary_key: [code]
"""
COLUMNS = ["code", "amount", "valid_at", "local_at", "note", "active", "units"]

PRICED = {
    "pricing/priced.yaml": "name: pricing.priced\nkind: ctas\n",
    "pricing/priced.sql": "SELECT code, amount * 2 AS doubled, note FROM ref.rates\n",
}


def with_seed_source(settings: str) -> str:
    """conveyor.yaml text with the ``ref`` seed source added to its sources."""
    assert "sources:\n" in settings
    return settings.replace("sources:\n", "sources:\n" + SEED_SOURCE, 1)


def field(value: Any) -> str:
    """One CSV field: NULL is empty, text is always quoted (so "" is the empty string)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def csv_text(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    return "\n".join([",".join(columns), *(",".join(field(v) for v in row) for row in rows)]) + "\n"


def write_seed(root: Path, rows: list[tuple[Any, ...]], name: str = "rates") -> Path:
    path = root / "seeds" / "ref" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(COLUMNS, rows), encoding="utf-8", newline="")
    return path


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
offsets = st.integers(-48, 56).map(lambda q: timezone(timedelta(minutes=15 * q)))
instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30))
zoned = st.tuples(instants, offsets).map(lambda pair: pair[0].replace(tzinfo=pair[1]))
decimals = st.decimals(min_value=-(10**13), max_value=10**13, places=4, allow_nan=False, allow_infinity=False)
row = st.tuples(
    st.none() | decimals,
    st.none() | zoned,
    st.none() | instants,
    st.none() | texts,
    st.none() | st.booleans(),
    st.none() | st.integers(-(2**63), 2**63 - 1),
)
#: rows of ``COLUMNS``, each with a distinct code
rows = st.lists(row, max_size=8).map(lambda found: [(f"c{i}", *r) for i, r in enumerate(found)])


def expected(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """What the warehouse must hold: timestamptz as UTC instants, everything else as written."""
    return sorted((*r[:2], r[2].astimezone(UTC) if r[2] else None, *r[3:]) for r in rows)


def held(found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows read back from a warehouse, in the form of :func:`expected`."""
    return sorted((r[0], r[1], r[2].astimezone(UTC) if r[2] else None, r[3], r[4], r[5], r[6]) for r in found)
