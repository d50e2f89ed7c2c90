"""Seeds on PostgreSQL: CSV values land exactly (decimals, microseconds, instants, NULL, empty text)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from conveyor import api
from tests.testkit.seeds import PRICED, RATES_DESIGN, expected, held, rows, with_seed_source, write_seed

from .conftest import write_files

pytestmark = pytest.mark.postgres

Sql = Callable[..., list[tuple[Any, ...]]]
SELECTION = ["ref", "pricing"]


def seed_project(pg_project: Callable[..., Path]) -> Path:
    root = pg_project(designs={"ref/rates.yaml": RATES_DESIGN, **PRICED})
    settings_path = root / "conveyor.yaml"
    settings_path.write_text(with_seed_source(settings_path.read_text()))
    return root


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_values_round_trip_exactly(pg_project: Callable[..., Path], sql: Sql, rows: list[tuple[Any, ...]]) -> None:
    root = seed_project(pg_project)
    write_seed(root, rows)
    outcome = api.load(api.open_project(root), SELECTION, env="pg")
    assert outcome.ok, outcome.summary()
    assert held(sql("SELECT * FROM ref.rates")) == expected(rows)


def test_a_ctas_reads_the_seed_and_sees_its_changes(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = seed_project(pg_project)
    write_files(root, {"seeds/ref/rates.csv": "code,amount,valid_at,local_at,note,active,units\nEUR,0.0001,,,,,\n"})
    assert api.load(api.open_project(root), SELECTION, env="pg").ok
    assert sql("SELECT code, doubled FROM pricing.priced") == [("EUR", Decimal("0.0002"))]
    write_files(root, {"seeds/ref/rates.csv": "code,amount,valid_at,local_at,note,active,units\nUSD,-3,,,,,\n"})
    assert api.load(api.open_project(root), SELECTION, env="pg").ok
    assert sql("SELECT code, doubled FROM pricing.priced") == [("USD", Decimal("-6.0000"))]
