"""The run results file (.conveyor/run_results.json): written by every run, valid against the
schema ``conveyor schema results`` publishes, and what ``run --format json`` prints."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import api
from conveyor.config.secrets import register_secret
from conveyor.reporting import Reporter
from conveyor.results import KEEP_RUNS, LATEST, RUNS_DIR, read_results, write_results
from conveyor.runctx import RunLifecycle

FAILING_TOTALS = (
    "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('boom') ELSE 'x' END AS name, 0 AS total\n"
    "FROM shop.orders\n"
)


@pytest.fixture(scope="module")
def schema(cli: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON Schema as the console script prints it."""
    done = cli("schema", "results", cwd=tmp_path_factory.mktemp("schema"))
    assert done.code == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["properties"]["schema_version"]["const"] == "1"
    return document


def valid(schema: dict[str, Any], document: Any) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(document)]
    assert errors == []


def files(root: Path, run_id: str) -> tuple[str, str]:
    return (root / RUNS_DIR / f"{run_id}.json").read_text(), (root / LATEST).read_text()


def test_a_run_writes_its_results_and_prints_them(
    make_project: Callable[..., Path], cli: Callable[..., Any], schema: dict[str, Any]
) -> None:
    root = make_project()
    done = cli("run", "--format", "json", cwd=root)
    assert done.code == 0, done.stderr
    document = json.loads(done.stdout)
    run_id = document["run"]["id"]
    per_run, latest = files(root, run_id)
    assert done.stdout == per_run == latest  # the same document, byte for byte
    valid(schema, document)

    shown = json.loads(cli("runs", "show", run_id, "--format", "json", cwd=root).stdout)
    assert document["run"]["status"] == shown["status"] == "succeeded"
    assert (document["run"]["command"], document["run"]["environment"]) == ("run", "dev")
    # every event runs show knows is a step of the document, with its status and rows
    steps = [(r["relation"], s["step"], s["status"], s["rows"]) for r in document["relations"] for s in r["steps"]]
    steps += [("*", s["step"], s["status"], s["rows"]) for s in document["run"]["steps"]]
    events = [(e["relation"], e["step"], e["status"], e["rows"]) for e in shown["events"]]
    assert sorted(steps, key=str) == sorted(events, key=str)
    kinds = {r["relation"]: r["kind"] for r in document["relations"]}
    assert kinds == {
        "shop.customers": "source", "shop.orders": "source", "shop.products": "source",
        "mart.customer_totals": "ctas", "mart.top_customers": "ctas", "mart.report": "view",
    }  # fmt: skip
    customers = next(r for r in document["relations"] if r["relation"] == "shop.customers")
    assert [(s["step"], s["environment"], s["rows"]) for s in customers["steps"]][:2] == [
        ("extract", None, 4),
        ("load", "dev", 4),
    ]
    assert document["summary"]["relations"] == {"succeeded": 6}
    assert document["summary"]["rows"]["extract"] == 4 + 5 + 3 == document["run"]["summary"]["extracted_rows"]
    assert document["tests"] == [] and document["summary"]["tests"] == {}
    assert document["run"]["summary"]["published"] is True


def test_a_failed_relation_and_its_skipped_dependents_carry_their_errors(
    make_project: Callable[..., Path], cli: Callable[..., Any], schema: dict[str, Any]
) -> None:
    root = make_project(designs={"mart/customer_totals.sql": FAILING_TOTALS})
    done = cli("run", "--format", "json", cwd=root)
    assert done.code == 1
    document = json.loads(done.stdout)
    assert done.stdout == files(root, document["run"]["id"])[1]
    valid(schema, document)
    by_name = {r["relation"]: r for r in document["relations"]}
    failed, skipped = by_name["mart.customer_totals"], by_name["mart.top_customers"]
    assert failed["status"] == "failed" and "boom" in failed["error"]
    assert skipped["status"] == "skipped" and "mart.customer_totals" in skipped["error"]
    assert by_name["mart.report"]["status"] == "skipped"
    assert document["run"]["status"] == "failed" and "boom" in document["run"]["error"]
    assert document["summary"]["relations"] == {"failed": 1, "skipped": 2, "succeeded": 3}
    assert document["run"]["summary"]["published"] is False


CUSTOMERS_WITH_TESTS = """\
name: shop.customers
columns:
  - name: id
    type: bigint
    not_null: true
    tests: [unique]
  - name: name
    type: text
  - name: email
    type: text
    tests:
      - not_null: {severity: warn}
  - name: active
    type: boolean
  - name: created_at
    type: timestamptz
  - name: balance
    type: decimal(10,2)
tests:
  - expression: {sql: "balance >= 0", name: no negative balance}
constraints:
  primary_key: [id]
"""


def test_a_run_with_data_tests_lists_their_outcomes(
    make_project: Callable[..., Path], cli: Callable[..., Any], schema: dict[str, Any]
) -> None:
    """Real tests on the build: one passes, a warn and an error test fail (balances -0.01 and NULL fail it)."""
    root = make_project(designs={"shop/customers.yaml": CUSTOMERS_WITH_TESTS})
    done = cli("run", "--format", "json", cwd=root)
    assert done.code == 1, done.stderr
    document = json.loads(done.stdout)
    assert done.stdout == (root / LATEST).read_text()
    valid(schema, document)
    tests = {t["test"]: t for t in document["tests"]}
    assert {name: t["status"] for name, t in tests.items()} == {
        "unique(id)": "succeeded", "not_null(email)": "warned", "no negative balance": "failed",
    }, tests  # fmt: skip
    balance = tests["no negative balance"]
    assert (balance["relation"], balance["kind"], balance["severity"], balance["failures"]) == (
        "shop.customers", "expression", "error", 2,
    )  # fmt: skip
    assert sorted(row["id"] for row in balance["rows"]) == [3, 4] and balance["sql"] and balance["location"]
    assert tests["not_null(email)"]["severity"] == "warn" and tests["not_null(email)"]["failures"] == 1
    by_name = {r["relation"]: r["status"] for r in document["relations"]}
    assert by_name["shop.customers"] == "failed" and by_name["mart.customer_totals"] == "skipped"
    assert document["summary"]["tests"] == {"failed": 1, "succeeded": 1, "warned": 1}


def test_load_and_extract_name_the_file_in_their_json(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project()
    extracted = json.loads(cli("extract", "--format", "json", cwd=root).stdout)
    loaded = json.loads(cli("load", "--format", "json", cwd=root).stdout)
    for summary in (extracted, loaded):  # their summaries are kept as they were, plus the file's path
        assert Path(summary["results"]) == root / RUNS_DIR / f"{summary['run_id']}.json"
        assert read_results(Path(summary["results"])).run.command == summary["command"]
    assert read_results(root / LATEST).run.id == loaded["run_id"]  # the latest run's
    assert loaded["published"] is True and loaded["failed"] == []


class Interrupt(Reporter):
    """Raises ``error`` when the build phase begins (after the extracts), as Ctrl-C or a bug would."""

    def __init__(self, error: BaseException):
        self.error = error

    def phase(self, name: str, total: int) -> None:
        if name == "build":
            raise self.error


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (KeyboardInterrupt(), "cancelled", "cancelled"),
        (RuntimeError("the process broke"), "failed", "RuntimeError: the process broke"),
    ],
    ids=["cancelled", "crashed"],
)
def test_a_cancelled_or_crashed_run_still_writes_its_results(
    make_project: Callable[..., Path], schema: dict[str, Any], error: BaseException, status: str, text: str
) -> None:
    root = make_project()
    project = api.open_project(root)
    with pytest.raises(type(error)):
        api.run(project, reporter=Interrupt(error))
    document = json.loads((root / LATEST).read_text())
    valid(schema, document)
    assert document["run"]["status"] == status and text in document["run"]["error"]
    assert files(root, document["run"]["id"])[0] == (root / LATEST).read_text()
    by_name = {r["relation"]: r["status"] for r in document["relations"]}
    assert by_name == {"shop.customers": "succeeded", "shop.orders": "succeeded", "shop.products": "succeeded"}


def test_a_state_folder_that_cannot_be_written_is_a_warning(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project()
    (root / ".conveyor").mkdir()
    (root / RUNS_DIR).write_text("not a folder")  # mkdir of .conveyor/runs fails
    done = cli("run", "--format", "json", cwd=root)
    assert done.code == 0, done.stderr
    assert "could not write the results of run" in done.stderr
    assert json.loads(done.stdout)["run"]["status"] == "succeeded"  # still printed, from memory
    assert not (root / LATEST).exists()


@pytest.fixture
def project_root(make_project: Callable[..., Path]) -> Path:
    return make_project()


@pytest.fixture
def lifecycle(project_root: Path) -> Iterator[Callable[[], RunLifecycle]]:
    """Open runs of the test project (``load`` of dev) that record into its real tracking store."""
    opened: list[RunLifecycle] = []
    project = api.open_project(project_root)

    def start() -> RunLifecycle:
        life = RunLifecycle(project, "load", environment="dev", selection=["mart"])
        opened.append(life)
        return life

    yield start
    for life in opened:
        life.tracking.close()


def record_test(life: RunLifecycle, relation: str, status: str, **detail: Any) -> None:
    began = datetime.now(UTC)
    life.tracking.record_event(
        life.ctx.run_id, relation, "test", status, started_at=began, finished_at=began + timedelta(seconds=0.25),
        detail=detail, environment="dev", error=None if status == "succeeded" else f"{detail.get('failures')} rows",
    )  # fmt: skip


def test_data_test_outcomes_are_in_the_results(
    lifecycle: Callable[[], RunLifecycle], project_root: Path, schema: dict[str, Any]
) -> None:
    life = lifecycle()
    with life.ctx.step("mart.customer_totals", "build") as outcome:
        outcome.rows = 4
    sql = 'SELECT * FROM "mart"."customer_totals" WHERE customer_id IS NULL'
    record_test(life, "mart.customer_totals", "succeeded", test="not_null_customer_id", kind="not_null",
                severity="error", failures=0, rows=[], sql=sql)  # fmt: skip
    failing = [{"customer_id": 7, "name": "Zoë", "total": "1.10"}, {"customer_id": 7, "name": None, "total": None}]
    record_test(life, "mart.customer_totals", "failed", test="unique_customer_id", kind="unique",
                severity="error", failures=2, rows=failing, sql=sql,
                location="schemas/mart/customer_totals.yaml:7")  # fmt: skip
    record_test(life, "mart.top_customers", "warned", test="total_positive", kind="expression", severity="warn",
                failures=1, rows=failing[:1], sql="SELECT 1")  # fmt: skip
    record_test(life, "mart.report", "skipped", test="rows_between", kind="row_count", severity="error")
    with life:
        life.finish("failed", error="a test failed")
    document = json.loads((project_root / LATEST).read_text())
    valid(schema, document)
    tests = {t["test"]: t for t in document["tests"]}
    assert tests["unique_customer_id"] == {
        "relation": "mart.customer_totals", "environment": "dev", "test": "unique_customer_id", "kind": "unique",
        "severity": "error", "status": "failed", "failures": 2, "rows": failing, "sql": sql,
        "location": "schemas/mart/customer_totals.yaml:7", "seconds": 0.25,
        "error": "2 rows", "started_at": tests["unique_customer_id"]["started_at"],
        "finished_at": tests["unique_customer_id"]["finished_at"],
    }  # fmt: skip
    assert tests["total_positive"]["status"] == "warned" and tests["total_positive"]["severity"] == "warn"
    assert tests["rows_between"]["failures"] is None and tests["rows_between"]["rows"] == []
    assert document["summary"]["tests"] == {"failed": 1, "skipped": 1, "succeeded": 1, "warned": 1}
    # the tests are not steps of their relation, but a failed error test fails it; a warning does not
    by_name = {r["relation"]: r for r in document["relations"]}
    assert set(by_name) == {"mart.customer_totals"}
    assert by_name["mart.customer_totals"]["status"] == "failed"
    assert [s["step"] for s in by_name["mart.customer_totals"]["steps"]] == ["build"]
    assert life.results == document


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
TESTS = st.lists(
    st.fixed_dictionaries(
        {
            "relation": st.sampled_from(["shop.customers", "mart.customer_totals", "not.a_relation"]),
            "status": st.sampled_from(["succeeded", "failed", "warned", "skipped"]),
            "test": st.text(min_size=1, max_size=30),
            "kind": st.sampled_from(["not_null", "unique", "accepted_values", "relationships", "expression"]),
            "severity": st.sampled_from(["error", "warn"]),
            "failures": st.integers(0, 10**12),
            "rows": st.lists(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4), max_size=8),
            "sql": st.text(max_size=200),
        }
    ),
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recorded=TESTS)
def test_any_recorded_tests_make_a_valid_document(
    lifecycle: Callable[[], RunLifecycle], project_root: Path, schema: dict[str, Any], recorded: list[dict[str, Any]]
) -> None:
    life = lifecycle()
    for test in recorded:
        record_test(life, **test)
    with life:
        life.finish("succeeded")
    document = json.loads((project_root / LATEST).read_text())
    valid(schema, document)
    assert read_results(project_root / LATEST).run.id == life.ctx.run_id  # the pydantic model reads it back
    got = [(t["relation"], t["test"], t["status"], t["failures"], t["rows"], t["sql"]) for t in document["tests"]]
    assert got == [(t["relation"], t["test"], t["status"], t["failures"], t["rows"][:5], t["sql"]) for t in recorded]
    statuses = [t["status"] for t in recorded]
    assert document["summary"]["tests"] == {s: statuses.count(s) for s in sorted(set(statuses))}


def test_secrets_never_reach_the_file(lifecycle: Callable[[], RunLifecycle], project_root: Path) -> None:
    secret = "s3cr3t-canary-9f2d"
    register_secret(secret)
    life = lifecycle()
    with pytest.raises(ValueError), life.ctx.step("mart.customer_totals", "build") as outcome:
        outcome.detail["note"] = f"dsn postgresql://u:{secret}@h/db"
        raise ValueError(f"could not connect with {secret}")
    record_test(life, "mart.customer_totals", "failed", test="t", kind="expression", severity="error", failures=1,
                rows=[{"token": secret, secret: 1}], sql=f"SELECT '{secret}'")  # fmt: skip
    with life:
        life.finish("failed", error=f"boom {secret}")
    text = (project_root / LATEST).read_text()
    assert secret not in text
    assert "***" in text


def test_old_per_run_files_are_pruned(
    lifecycle: Callable[[], RunLifecycle], project_root: Path, tmp_path: Path
) -> None:
    life = lifecycle()
    with life:
        life.finish("succeeded")
    document = json.loads((project_root / LATEST).read_text())
    folder = tmp_path / "state"
    for index in range(5):
        write_results(folder, {**document, "run": {**document["run"], "id": f"2026010{index}T000000Z-a"}}, keep=3)
    kept = sorted(p.name for p in (folder / RUNS_DIR).iterdir())
    assert kept == ["20260102T000000Z-a.json", "20260103T000000Z-a.json", "20260104T000000Z-a.json"]
    assert read_results(folder / LATEST).run.id == "20260104T000000Z-a"
    assert KEEP_RUNS >= 100


def test_the_file_is_replaced_whole(lifecycle: Callable[[], RunLifecycle], project_root: Path) -> None:
    """No temporary file is left beside it, and a failed replace keeps the previous document."""
    life = lifecycle()
    with life:
        life.finish("succeeded")
    first = (project_root / LATEST).read_text()
    state = (project_root / LATEST).parent
    assert [p.name for p in state.iterdir() if p.name.endswith(".tmp")] == []
    latest = project_root / LATEST
    latest.rename(state / "kept.json")
    latest.mkdir()  # os.replace onto a folder fails: the per-run file is written, the latest is not
    second = lifecycle()
    with second:
        second.finish("succeeded")
    assert second.results is not None and second.results_path is None
    assert (project_root / RUNS_DIR / f"{second.ctx.run_id}.json").exists()
    assert latest.is_dir() and list(latest.iterdir()) == []
    assert [p.name for p in state.iterdir() if p.name.endswith(".tmp")] == []
    assert (state / "kept.json").read_text() == first


def test_the_documented_example_is_valid(schema: dict[str, Any]) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text(encoding="utf-8")
    (example,) = [block.split("```", 1)[0] for block in text.split("```json\n")[1:]]
    document = json.loads(example)
    valid(schema, document)
    assert set(document) == set(schema["properties"])  # every top-level field is shown
