"""A build decides most generic tests with one aggregate query per relation (a probe); the probe
must never pass a test whose failing-rows query finds failures.

Random tables (NULLs, duplicates) and random tests (every kind that has a probe, with and
without ``where``) in a real DuckDB: the probe's count equals the number of failing rows
for ``not_null``, ``accepted_values`` and ``expression``, and ``unique`` passes by its probe
only when the failing-rows query finds no duplicate.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.design import tests as design_tests
from conveyor.errors import Location
from conveyor.project import Project
from conveyor.quality.plan import DataTest
from conveyor.quality.sql import failing_rows, probe, probes

DESIGN = """\
name: m.t
kind: ctas
columns:
  - {name: a, type: bigint}
  - {name: b, type: text}
"""

WHERES = [None, "a IS NOT NULL AND a < 3", "b <> 'y'", "a % 2 = 0"]
TARGETS = [{"column": "a"}, {"column": "b"}, {"expression": "a % 3"}, {"expression": "lower(b)"}]

rows = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(-3, 6)), st.one_of(st.none(), st.sampled_from(["x", "y", "X", "z"]))),
    max_size=8,
)


@st.composite
def entries(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(["not_null", "unique", "accepted_values_a", "accepted_values_b", "expression"]))
    args: dict[str, object] = {}
    where = draw(st.sampled_from(WHERES))
    if where:
        args["where"] = where
    if kind == "expression":
        predicate = draw(st.sampled_from(["a > 0", "b <> 'x'", "a IS NULL OR b IS NOT NULL"]))
        return {"expression": {"sql": predicate, **args}}
    if kind == "accepted_values_a":
        return {"accepted_values": {"column": "a", "values": draw(st.lists(st.integers(-3, 6), min_size=1)), **args}}
    if kind == "accepted_values_b":
        values = draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=1))
        return {"accepted_values": {"column": "b", "values": values, **args}}
    return {kind: {**draw(st.sampled_from(TARGETS)), **args}}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root: Path = tmp_path_factory.mktemp("probe")
    (root / "conveyor.yaml").write_text("name: probe\nenvironments:\n  dev: {type: duckdb, dsn: w.duckdb}\n")
    (root / "schemas/m").mkdir(parents=True)
    (root / "schemas/m/t.yaml").write_text(DESIGN)
    (root / "schemas/m/t.sql").write_text("SELECT CAST(1 AS BIGINT) AS a, 'x' AS b\n")
    return Project.load(root, cache=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rows, spec=entries())
def test_a_probe_passes_a_test_only_when_its_failing_rows_query_finds_nothing(
    project: Project, data: list[tuple[int | None, str | None]], spec: dict[str, object]
) -> None:
    entry = design_tests.TestEntry.model_validate(spec)
    test = DataTest(name="t", relation="m.t", kind=entry.kind, severity="error", where=Location("t.yaml"), entry=entry,
                    column=getattr(entry.args, "column", None))  # fmt: skip
    found = probe(test, project)
    assert found is not None
    sql, most = found
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA m")
        con.execute("CREATE TABLE m.t (a BIGINT, b TEXT)")
        if data:
            con.executemany("INSERT INTO m.t VALUES (?, ?)", data)
        failures = con.execute(failing_rows(test, project, lambda name: name, "duckdb")).fetchall()
        row = con.execute(probes("m.t", [sql, sql])).fetchone()
    assert row is not None and row[0] == row[1]
    value = int(row[0])
    if entry.kind == "unique":
        assert most == 1
        assert value > 1 or not failures  # passing by the probe: no duplicate exists
    else:
        assert most == 0
        assert value == len(failures)


def test_multi_column_unique_and_assertions_have_no_probe(project: Project) -> None:
    entry = design_tests.TestEntry.model_validate({"unique": {"columns": ["a", "b"]}})
    test = DataTest(name="u", relation="m.t", kind="unique", severity="error", where=Location("t.yaml"), entry=entry)
    assert probe(test, project) is None
    assertion = DataTest(name="c", relation="m.t", kind="assertion", severity="error", where=Location("c.sql"),
                         sql="SELECT 1")  # fmt: skip
    assert probe(assertion, project) is None
