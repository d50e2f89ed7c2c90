"""The run results file: one versioned JSON document per run, for tools to build on.

Every run (a command's or a pipeline's) ends in :meth:`conveyor.runctx.RunLifecycle.finish`,
which builds the document (:class:`RunResults` describes it) from what the tracking store
recorded of the run (its row and its events, exactly what ``conveyor runs show`` reads) and
writes it to
``<project>/.conveyor/runs/<run id>.json`` and ``<project>/.conveyor/run_results.json`` (the
latest run's). Both are replaced atomically (a temporary file, then ``os.replace``), so a
reader sees a whole document or the previous one. ``conveyor schema results`` prints the JSON
Schema; docs/results.md describes the document and its compatibility promise.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor import __version__
from conveyor.config.secrets import scrub
from conveyor.tracking.models import EventRow, RunRow, format_ts

if TYPE_CHECKING:
    from conveyor.tracking.store import TrackingStore

SCHEMA_VERSION: Literal["1"] = "1"
"""Additive changes (a new field, a new status) keep it; a field removed, renamed or retyped bumps it."""

STATE_DIR = Path(".conveyor")
"""The project's state folder, relative to its root (the default tracking store lives there too)."""

LATEST = STATE_DIR / "run_results.json"
RUNS_DIR = STATE_DIR / "runs"

KEEP_RUNS = 1000
"""Per-run files kept in ``.conveyor/runs/``; older ones are removed (the tracking store keeps every run)."""

RUN_WIDE = "*"
"""The relation name of a run-wide step (publish, commit, validate)."""

TEST_STEP = "test"
"""The step of a data test's event; its detail names the test (see :class:`TestResult`)."""

_FAILED_ROWS_KEPT = 5


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepResult(_Model):
    """One step of one relation (extract, load, build, check, update, unload ...), or of the whole run."""

    step: str = Field(description="extract, load, build, check, update, upgrade, unload, publish, commit ...")
    environment: str | None = Field(description="The environment it ran in (None for an extract)")
    status: str = Field(description="succeeded, failed, skipped, cancelled, abandoned, or running")
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None = Field(description="Wall time of the step (None while it runs)")
    rows: int | None = Field(description="Rows extracted, loaded or built")
    bytes: int | None = Field(description="Bytes written, where the step knows")
    error: str | None = Field(description="Why it failed or was skipped; secrets removed")
    detail: dict[str, Any] | None = Field(description="What the step recorded besides (fingerprints, extract ids ...)")


class RelationResult(_Model):
    """Every step a run took for one relation, in the order they started (a pipeline that loads
    two environments has a step per environment)."""

    relation: str = Field(description="schema.table, or what a pipeline step acted on")
    kind: str | None = Field(description="source, ctas or view; None for a name that is not a project relation")
    status: str = Field(
        description="failed if a step or an error-severity test failed, else cancelled, abandoned, running, "
        "skipped (every step skipped), or succeeded"
    )
    seconds: float | None = Field(description="Sum of the steps' wall times")
    rows: int | None = Field(description="Rows of the relation's last step that counted any")
    error: str | None = Field(description="The first error of its steps")
    steps: list[StepResult]


class TestResult(_Model):
    """One data test's outcome."""

    __test__ = False  # not a pytest test class

    relation: str = Field(description="The relation the test covers")
    environment: str | None
    test: str = Field(description="The test's name")
    kind: str | None = Field(description="not_null, unique, accepted_values, relationships, expression ...")
    severity: str | None = Field(description="error or warn")
    status: str = Field(
        description="succeeded (passed), failed (an error-severity test failed), warned (a warn-severity "
        "test failed), skipped, cancelled or abandoned"
    )
    failures: int | None = Field(description="How many rows fail it")
    rows: list[dict[str, Any]] = Field(description=f"Up to {_FAILED_ROWS_KEPT} failing rows, column to value")
    sql: str | None = Field(description="A query that selects the failing rows")
    location: str | None = Field(description="Where the test is defined, file:line")
    seconds: float | None
    error: str | None = Field(description="Why it could not run, or what failed")
    started_at: datetime
    finished_at: datetime | None


class RunInfo(_Model):
    """The run itself, as the tracking store's ``runs`` row records it."""

    id: str = Field(description="The run id, e.g. 20261121T055940Z-3f9a1c")
    command: str = Field(description="run, extract, load, update, upgrade, unload or pipeline")
    project: str
    pipeline: str | None
    environment: str | None = Field(description="The target environment (a pipeline's primary one)")
    environments: list[str] = Field(description="Every environment the run's steps wrote, in order of first use")
    selection: str | None = Field(description="The selection as given")
    status: str = Field(description="succeeded, failed, cancelled, abandoned (or running)")
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    error: str | None = Field(description="What ended the run, if it failed or was cancelled; secrets removed")
    host: str
    pid: int
    user: str | None
    summary: dict[str, Any] | None = Field(description="The command's own summary (published, rows, notes ...)")
    steps: list[StepResult] = Field(description="Run-wide steps: publish, commit, validate")


class Summary(_Model):
    """Counts, for a glance."""

    relations: dict[str, int] = Field(description="Relations per status")
    steps: dict[str, int] = Field(description="Steps (run-wide ones included) per status")
    tests: dict[str, int] = Field(description="Tests per status")
    rows: dict[str, int] = Field(description="Rows per step name (extract, load, build ...), summed over relations")


class RunResults(_Model):
    """The results of one Conveyor run (``.conveyor/run_results.json``)."""

    schema_version: Literal["1"] = Field(description="Bumped only by a breaking change; see docs/results.md")
    conveyor_version: str = Field(description="The Conveyor that wrote this document")
    generated_at: datetime
    run: RunInfo
    relations: list[RelationResult]
    tests: list[TestResult]
    summary: Summary


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`RunResults` (``conveyor schema results``)."""
    document = RunResults.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = f"https://conveyor.dev/schemas/run-results/v{SCHEMA_VERSION}.json"
    document["title"] = f"Conveyor run results, schema_version {SCHEMA_VERSION}"
    return document


def build_results(
    run: RunRow, events: Sequence[EventRow], kinds: dict[str, str], *, now: datetime | None = None
) -> dict[str, Any]:
    """The results document of ``run`` from its events (``kinds``: relation name to kind), as JSON data.

    Built as plain data, not through :class:`RunResults` (validating a 1,000-relation run's
    document would cost more than the run's bookkeeping); the tests check it against the schema.
    """
    from conveyor.tracking.rows import now_utc

    clean = _Scrubber()
    tests = [_test(e, clean) for e in events if e.step == TEST_STEP]
    run_wide = [_step(e, clean) for e in events if e.relation == RUN_WIDE and e.step != TEST_STEP]
    grouped: dict[str, list[EventRow]] = {}
    for event in events:
        if event.relation != RUN_WIDE and event.step != TEST_STEP:
            grouped.setdefault(event.relation, []).append(event)
    failed_tests = {t["relation"] for t in tests if t["status"] == "failed"}
    relations = [
        _relation(name, kinds.get(name), [_step(e, clean) for e in steps], name in failed_tests)
        for name, steps in grouped.items()
    ]
    info = {
        "id": run.run_id, "command": run.command, "project": run.project, "pipeline": run.pipeline,
        "environment": run.environment, "environments": _unique([run.environment, *(e.environment for e in events)]),
        "selection": run.selection, "status": run.status, "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at), "seconds": run.duration_s, "error": clean(run.error),
        "host": run.host, "pid": run.pid, "user": run.username, "summary": clean(run.summary), "steps": run_wide,
    }  # fmt: skip
    every_step = [s for r in relations for s in r["steps"]] + run_wide
    summary = {
        "relations": _count(r["status"] for r in relations),
        "steps": _count(s["status"] for s in every_step),
        "tests": _count(t["status"] for t in tests),
        "rows": _rows_per_step(every_step),
    }
    return {
        "schema_version": SCHEMA_VERSION, "conveyor_version": __version__, "generated_at": _time(now or now_utc()),
        "run": info, "relations": relations, "tests": tests, "summary": summary,
    }  # fmt: skip


def results_of(tracking: TrackingStore, run_id: str, kinds: dict[str, str]) -> dict[str, Any]:
    """Build the document of ``run_id`` from a :class:`~conveyor.tracking.store.TrackingStore`."""
    return build_results(tracking.get_run(run_id), tracking.run_events(run_id), kinds)


def render(document: dict[str, Any]) -> str:
    """The document's text, as the file holds it and ``run --format json`` prints it."""
    return json.dumps(document, separators=(",", ":")) + "\n"


def write_results(root: Path, document: dict[str, Any], *, keep: int = KEEP_RUNS) -> Path:
    """Write the document to ``.conveyor/runs/<run id>.json`` and ``.conveyor/run_results.json``.

    Each is replaced atomically. Per-run files beyond the newest ``keep`` are removed.

    Returns:
        The per-run file.

    Raises:
        OSError: the state folder cannot be written.
    """
    text = render(document)
    runs = root / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    path = runs / f"{document['run']['id']}.json"
    _replace(path, text)
    _replace(root / LATEST, text)
    _prune(runs, keep)
    return path


def read_results(path: Path) -> RunResults:
    """Read a results file back (raises pydantic's ValidationError on one of another schema)."""
    return RunResults.model_validate_json(path.read_bytes())


def _replace(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _prune(runs: Path, keep: int) -> None:
    files = sorted(p for p in runs.glob("*.json") if not p.name.startswith("."))  # run ids sort by time
    for old in files[: max(0, len(files) - keep)]:
        old.unlink(missing_ok=True)


class _Scrubber:
    """:func:`scrub` over every string of a value (dicts and lists walked), each distinct text once."""

    def __init__(self) -> None:
        self._done: dict[str, str] = {}

    def text(self, value: str) -> str:
        found = self._done.get(value)
        if found is None:
            found = self._done[value] = scrub(value)
        return found

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.text(str(value))


def _time(value: datetime | None) -> str | None:
    """ISO-8601 UTC with microseconds, as the tracking store holds it: fixed width, so the text sorts as the time."""
    return None if value is None else format_ts(value)


def _step(event: EventRow, clean: _Scrubber) -> dict[str, Any]:
    return {
        "step": event.step, "environment": event.environment, "status": event.status,
        "started_at": _time(event.started_at), "finished_at": _time(event.finished_at), "seconds": event.duration_s,
        "rows": event.rows, "bytes": event.bytes, "error": clean(event.error), "detail": clean(event.detail),
    }  # fmt: skip


_SEVERITY = ("failed", "cancelled", "abandoned", "running")


def _relation(name: str, kind: str | None, steps: list[dict[str, Any]], test_failed: bool) -> dict[str, Any]:
    statuses = {s["status"] for s in steps}
    if test_failed:
        statuses.add("failed")
    status = next((s for s in _SEVERITY if s in statuses), "skipped" if statuses == {"skipped"} else "succeeded")
    timed = [s["seconds"] for s in steps if s["seconds"] is not None]
    counted = [s["rows"] for s in steps if s["rows"] is not None]
    error = next((s["error"] for s in steps if s["error"] and s["status"] != "succeeded"), None)
    return {
        "relation": name, "kind": kind, "status": status, "seconds": round(sum(timed), 6) if timed else None,
        "rows": counted[-1] if counted else None, "error": error, "steps": steps,
    }  # fmt: skip


def _test(event: EventRow, clean: _Scrubber) -> dict[str, Any]:
    detail = event.detail or {}
    rows = detail.get("rows")
    failures = detail.get("failures")
    return {
        "relation": event.relation, "environment": event.environment,
        "test": clean(str(detail.get("test") or event.relation)), "kind": clean(_optional_text(detail.get("kind"))),
        "severity": clean(_optional_text(detail.get("severity"))), "status": event.status,
        "failures": failures if isinstance(failures, int) and not isinstance(failures, bool) else None,
        "rows": [clean(r) for r in rows[:_FAILED_ROWS_KEPT] if isinstance(r, dict)] if isinstance(rows, list) else [],
        "sql": clean(_optional_text(detail.get("sql"))), "location": clean(_optional_text(detail.get("location"))),
        "seconds": event.duration_s, "error": clean(event.error),
        "started_at": _time(event.started_at), "finished_at": _time(event.finished_at),
    }  # fmt: skip


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _count(statuses: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def _rows_per_step(steps: Iterable[dict[str, Any]]) -> dict[str, int]:
    rows: dict[str, int] = {}
    for step in steps:
        if step["rows"] is not None:
            rows[step["step"]] = rows.get(step["step"], 0) + step["rows"]
    return rows


def _unique(names: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))
