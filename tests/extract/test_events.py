"""Event-triggered extraction: per-table failures, the summary, --fail-fast and bad events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import columns, lake, run_cli, write_project

GOOD = {"columns": columns(("id", "integer"), ("v", "text"))}
# designed when the table still had a column "gone": reading it now fails
BAD = {"columns": columns(("id", "integer"), ("gone", "text"))}


@pytest.fixture
def project(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> Path:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(
        "CREATE TABLE good1 (id int, v text); CREATE TABLE good2 (id int, v text);"
        "CREATE TABLE bad (id int, gone text);"
        "INSERT INTO good1 SELECT g, 'a' || g FROM generate_series(1, 10) g;"
        "INSERT INTO good2 SELECT g, 'b' || g FROM generate_series(1, 20) g;"
        "INSERT INTO bad VALUES (1, 'x'); ALTER TABLE bad DROP COLUMN gone"
    )
    return write_project(tmp_path / "p", "postgres", designs={"good1": GOOD, "good2": GOOD, "bad": BAD})


@pytest.fixture
def offline(tmp_path: Path, monkeypatch) -> Path:
    """The same project with an upstream nobody may connect to: bad input must fail before any connection."""
    monkeypatch.setenv("UP_DSN", "postgresql://postgres@127.0.0.1:1/offline")
    return write_project(tmp_path / "p", "postgres", designs={"good1": GOOD, "good2": GOOD, "bad": BAD})


def committed(root: Path, table: str) -> int | None:
    found = lake(root).latest("up", f"up.{table}")
    return None if found is None else found.rows


def status_by_table(cli, root: Path) -> dict[str, dict]:
    result = cli(root, "extract", "status", "--format", "json")
    assert result.code == 0, result.output
    return {row["table_name"]: row for row in result.json()}


def assert_good_committed_bad_failed(cli, root: Path) -> None:
    assert committed(root, "good1") == 10 and committed(root, "good2") == 20
    assert committed(root, "bad") is None
    state = status_by_table(cli, root)
    assert state["up.good1"]["status"] == state["up.good2"]["status"] == "succeeded"
    assert state["up.bad"]["status"] == "failed"
    assert 'column "gone" does not exist in table "public.bad"' in state["up.bad"]["error"]
    assert state["up.bad"]["last_success_extract_id"] is None


@pytest.mark.postgres
@pytest.mark.slow
def test_event_on_stdin_commits_the_good_tables_and_records_the_failure(project: Path, cli) -> None:
    event = {"source": "up", "tables": ["good1", "bad", "good2"]}
    result = run_cli(project, "extract", "--event", "-", stdin=json.dumps(event))
    assert result.code == 1, result.output
    assert "Extracted 2/3 tables, 30 rows" in result.stdout
    assert '✗ up.bad: column "gone" does not exist in table "public.bad"' in result.stdout
    assert "failed" in result.stderr
    assert_good_committed_bad_failed(cli, project)


@pytest.mark.postgres
def test_tables_option_behaves_like_an_event(project: Path, cli) -> None:
    result = cli(project, "extract", "--tables", "good1, bad ,good2", "--format", "json")
    assert result.code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["extracted_tables"] == 3 and data["extracted_rows"] == 30
    assert data["extract_failed"] == ["up.bad"]
    assert_good_committed_bad_failed(cli, project)
    # a table given by its upstream name works as well
    again = cli(project, "extract", "--tables", "public.good2")
    assert again.code == 0, again.output
    assert "Extracted 1/1 tables, 20 rows" in again.stdout


@pytest.mark.postgres
def test_fail_fast_skips_tables_not_started(project: Path, cli) -> None:
    result = cli(project, "extract", "--tables", "bad,good1,good2", "--fail-fast", "--jobs", "1", "--format", "json")
    assert result.code == 1, result.output
    assert json.loads(result.stdout)["extract_failed"] == ["up.bad"]
    assert committed(project, "good2") is None  # queued behind the failure: never started
    assert "up.good2" not in status_by_table(cli, project)


@pytest.mark.postgres
def test_fail_fast_starts_no_table_after_the_first_failure(project: Path, cli) -> None:
    result = cli(project, "extract", "--tables", "bad,good1,good2", "--fail-fast", "--jobs", "1")
    assert result.code == 1
    assert committed(project, "good1") is None, "good1 was started after bad had failed"


@pytest.mark.postgres
def test_fail_fast_summary_counts_only_extracted_tables(project: Path, cli) -> None:
    result = cli(project, "extract", "--tables", "bad,good1,good2", "--fail-fast", "--jobs", "1")
    assert result.code == 1
    extracted = sum(committed(project, t) is not None for t in ("good1", "good2", "bad"))
    assert f"Extracted {extracted}/3 tables" in result.stdout, result.stdout
    assert "up.good2" in result.stdout  # a skipped table is named in the summary


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ('{"source": "up", "tables": ["good1"', "the event on standard input is not valid JSON"),
        ('["good1"]', "must be a JSON object"),
        ('{"source": "up", "table": ["good1"]}', 'unknown key "table"'),
        ('{"source": "up", "tables": "good1"}', '"tables" must be "*" or a list'),
        ('{"source": "nope", "tables": "*"}', 'the event names source "nope", which is not configured'),
        ('{"source": "up", "tables": ["good1", "missing"]}', 'the event names table "missing", which has no design'),
    ],
    ids=["truncated", "not-an-object", "unknown-key", "tables-not-a-list", "unknown-source", "unknown-table"],
)
def test_bad_events_exit_2_and_write_nothing(offline: Path, cli, stdin: str, message: str) -> None:
    project = offline
    result = cli(project, "extract", "--event", "-", stdin=stdin)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert not (project / "lake").exists()
    assert not (project / ".conveyor").exists()  # no run recorded either


@pytest.mark.postgres
def test_event_file_and_tables_together_is_a_usage_error(project: Path, cli) -> None:
    event = project / "event.json"
    event.write_text('{"tables": "*"}', encoding="utf-8")
    result = cli(project, "extract", "--event", str(event), "--tables", "good1")
    assert result.code == 2 and "either --tables or --event" in result.stderr
    missing = cli(project, "extract", "--event", str(project / "nope.json"))
    assert missing.code == 2 and "cannot read the event file" in missing.stderr
    assert not (project / "lake").exists()
    everything = cli(project, "extract", "--event", str(event))
    assert everything.code == 1 and "Extracted 2/3 tables" in everything.stdout
