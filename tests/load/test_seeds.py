"""Seeds on DuckDB: CSV files of the project loaded as source tables through the lake, exactly.

Real CSV files, a real lake (Parquet and manifests) and a real DuckDB warehouse; the bad
inputs go through the console script, for their exit code and their file:line.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings

from conveyor import api
from tests.conftest import CONVEYOR_YAML
from tests.testkit.cli import CliResult
from tests.testkit.seeds import PRICED, RATES_DESIGN, expected, held, rows, with_seed_source, write_seed

MakeProject = Callable[..., Path]
Cli = Callable[..., CliResult]

SELECTION = ["ref", "pricing"]
GOOD = 'code,amount,valid_at,local_at,note,active,units\nEUR,1.0825,2024-01-01 00:00:00.123456+01:00,,"a, b",true,7\n'


def seed_project(make_project: MakeProject, csv: str | None = GOOD, **designs: str | None) -> Path:
    root = make_project(
        settings=with_seed_source(CONVEYOR_YAML), designs={"ref/rates.yaml": RATES_DESIGN, **PRICED, **designs}
    )
    if csv is not None:
        (root / "seeds" / "ref").mkdir(parents=True)
        (root / "seeds" / "ref" / "rates.csv").write_text(csv, encoding="utf-8")
    return root


def query(root: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def extracts(root: Path) -> list[str]:
    folder = root / "lake" / "data" / "ref" / "ref.rates"
    return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").is_file()) if folder.is_dir() else []


def test_a_seed_is_a_source_relation_a_ctas_reads(make_project: MakeProject) -> None:
    root = seed_project(make_project)
    project = api.open_project(root)
    assert project.relations["ref.rates"].kind == "source"
    assert "ref.rates" in project.relations["pricing.priced"].dependencies
    assert [r.name for r in project.select(["ref"])] == ["ref.rates"]
    outcome = api.load(project, SELECTION)  # no extract yet: the load extracts the seed first
    assert outcome.ok, outcome.summary()
    assert query(root, "SELECT code, doubled, note FROM pricing.priced") == [("EUR", Decimal("2.1650"), "a, b")]
    assert len(extracts(root)) == 1
    manifest = (root / "lake" / "data" / "ref" / "ref.rates" / extracts(root)[0] / "manifest.json").read_text()
    assert "seeds/ref/rates.csv sha256:" in manifest


def test_ls_and_validate_see_the_seed(make_project: MakeProject, cli: Cli) -> None:
    root = seed_project(make_project)
    listed = cli("ls", "ref", cwd=root)
    assert listed.code == 0 and "ref.rates" in listed.stdout and "source" in listed.stdout
    checked = cli("validate", "--format", "json", cwd=root)
    assert checked.code == 0, checked.output


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_values_round_trip_exactly(make_project: MakeProject, rows: list[tuple[Any, ...]]) -> None:
    root = seed_project(make_project, csv=None)
    write_seed(root, rows)
    outcome = api.load(api.open_project(root), SELECTION)
    assert outcome.ok, outcome.summary()
    assert held(query(root, "SELECT * FROM ref.rates")) == expected(rows)


def test_a_changed_csv_is_picked_up_by_the_next_load_and_run(make_project: MakeProject) -> None:
    root = seed_project(make_project)
    assert api.load(api.open_project(root), SELECTION).ok
    assert api.load(api.open_project(root), SELECTION).ok  # unchanged: nothing extracted again
    assert len(extracts(root)) == 1
    csv = root / "seeds" / "ref" / "rates.csv"
    csv.write_text(GOOD + "USD,2.5,,2024-02-03 04:05:06.000007,,false,\n", encoding="utf-8")
    outcome = api.load(api.open_project(root), SELECTION)
    assert outcome.ok and any("ref.rates" in note for note in outcome.notes)
    assert len(extracts(root)) == 2
    assert query(root, "SELECT code, local_at FROM ref.rates WHERE code = 'USD'")[0][1].microsecond == 7
    csv.write_text(GOOD.replace("EUR", "CHF"), encoding="utf-8")
    assert api.run(api.open_project(root), SELECTION).ok
    assert query(root, "SELECT code FROM pricing.priced") == [("CHF",)]


def _refused(root: Path, result: CliResult, *needles: str) -> None:
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert not (root / "warehouse.duckdb").exists()
    assert extracts(root) == []


def test_a_header_that_does_not_match_the_design_is_refused(make_project: MakeProject, cli: Cli) -> None:
    root = seed_project(make_project, csv=GOOD.replace("units", "unit"))
    for command in ("load", "run", "extract"):
        _refused(root, cli(command, cwd=root), "seeds/ref/rates.csv:1", '"unit"', '"units"')
    checked = cli("validate", "--format", "json", cwd=root)
    assert checked.code == 2
    [found] = [p for p in checked.json()["problems"] if p["code"] == "seed-header"]
    assert (found["file"], found["line"]) == ("seeds/ref/rates.csv", 1)


def test_a_decimal_with_more_places_than_the_design_is_refused_not_rounded(make_project: MakeProject, cli: Cli) -> None:
    bad = GOOD + 'GBP,,,,"line one\nline two",,\nUSD,1.23456,,,,,\n'
    root = seed_project(make_project, csv=bad)
    for command in ("load", "run"):
        _refused(root, cli(command, cwd=root), "seeds/ref/rates.csv:5", 'column "amount"', "1.23456", "decimal(18,4)")


def test_bad_values_name_their_line_and_column(make_project: MakeProject, cli: Cli) -> None:
    cases = {
        "EUR,,2024-01-01 10:00:00,,,,\n": ('column "valid_at"', "UTC offset"),
        "EUR,,,2024-01-01 10:00:00.1234567,,,\n": ('column "local_at"', "6 fractional digits"),
        "EUR,,,,,yes,\n": ('column "active"', "true or false"),
        'EUR,"",,,,,\n': ('column "amount"', "leave the field empty"),
        ",,,,,,\n": ('column "code"', "not_null"),
        "EUR,1,,,,,1,2\n": ("8 field(s)",),
        'EUR,1,,,"a"b,,\n': ("quote",),
    }
    for line, needles in cases.items():
        root = seed_project(make_project, csv="code,amount,valid_at,local_at,note,active,units\n\n" + line)
        _refused(root, cli("load", cwd=root), "seeds/ref/rates.csv:3", *needles)


def test_a_seed_without_its_csv_file_is_refused(make_project: MakeProject, cli: Cli) -> None:
    root = seed_project(make_project, csv=None)
    (root / "seeds" / "ref").mkdir(parents=True)
    checked = cli("validate", "--format", "json", cwd=root)
    assert checked.code == 2
    assert [p["file"] for p in checked.json()["problems"] if p["code"] == "seed-missing"] == ["seeds/ref/rates.csv"]
    _refused(root, cli("load", cwd=root), "seeds/ref/rates.csv", "does not exist")


def test_extract_settings_a_seed_cannot_have_are_refused(make_project: MakeProject, cli: Cli) -> None:
    design = RATES_DESIGN + "extract:\n  incremental: {cursor: valid_at}\n  job_type: spark\n"
    root = seed_project(make_project, **{"ref/rates.yaml": design})
    checked = cli("validate", "--skip-sources", "--format", "json", cwd=root)
    found = sorted((p["line"], p["message"]) for p in checked.json()["problems"] if p["code"] == "seed-extract")
    assert checked.code == 2 and len(found) == 2, checked.output
    assert "job type spark" in found[0][1] + found[1][1] and "extract.incremental" in found[0][1] + found[1][1]
