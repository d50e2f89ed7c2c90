"""Run data tests against a build's staging copy or a published warehouse, and record each outcome.

Each test becomes one tracking-store event: relation = the relation it covers, step =
``test``, status ``succeeded`` (passed), ``failed`` (an ``error`` test failed), ``warned``
(a ``warn`` test failed) or ``skipped``, with the detail a person needs to act: the test's
name and kind, how many rows fail, up to :data:`SAMPLE_ROWS` of them (keys and values), and
the SQL that finds them in the published warehouse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as clock
from decimal import Decimal
from typing import Any
from uuid import UUID

from conveyor.config.secrets import scrub
from conveyor.design.tests import percent
from conveyor.errors import ConveyorError
from conveyor.project import Project
from conveyor.quality.plan import DataTest
from conveyor.quality.sql import FAILURES_COLUMN, failing_rows, probe, probes, row_count, with_count
from conveyor.runctx import RunContext
from conveyor.tracking.models import FinishedEvent
from conveyor.warehouse.base import QueryResult

SAMPLE_ROWS = 5
"""Failing rows recorded per failed test."""

TEST_STEP = "test"
"""The step name of test events."""

Fetch = Callable[[str, int], QueryResult]
"""Runs a query, returning at most so many rows."""

VOLUME_KINDS = frozenset({"row_count", "row_count_change"})


@dataclass
class TestOutcome:
    """What one test found."""

    test: DataTest
    status: str
    """succeeded, failed, warned or skipped."""
    failures: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    sql: str | None = None
    """The SQL that finds the failures in the published warehouse."""
    message: str | None = None
    seconds: float = 0.0

    @property
    def blocking(self) -> bool:
        """Whether it fails the relation it covers."""
        return self.status == "failed"

    def detail(self) -> dict[str, Any]:
        """The event's detail; a test that passed is not located (finding a design's line costs a YAML parse)."""
        found = {
            "test": self.test.name,
            "kind": self.test.kind,
            "severity": self.test.severity,
            "failures": self.failures,
            "rows": self.rows,
            "sql": self.sql,
            "seconds": round(self.seconds, 6),
        }
        if self.status != "succeeded":
            found["location"] = str(self.test.location)
        return found

    def describe(self) -> str:
        """One line: ``shop.orders test "not_null(status)": 3 failing rows (schemas/shop/orders.yaml:12)``."""
        return f'{self.test.relation} test "{self.test.name}": {self.message} ({self.test.location})'


class Tester:
    """Runs tests through one connection-like ``fetch``, naming relations as this build reads them.

    Args:
        fetch: runs a query where the tests read (a build's staging, or the published warehouse).
        name_of: the name to read a relation from during this run (its staging copy or itself).
        published: row counts of the published relations, for ``row_count_change`` (None:
            not published yet, the test passes with a note).
        skip_volume: the relations hold no rows (``--skip-copy``): volume tests are skipped.
        batch: :meth:`run_all` first probes the generic tests of each relation together, in one
            aggregate query over it (see :func:`~conveyor.quality.sql.probe`), and runs the
            failing-rows query only of the tests the probe cannot show passing. For ``fetch``
            calls that are independent of each other (a build's staging): when the probe query
            fails, each test runs on its own and reports its own error.
    """

    def __init__(
        self,
        project: Project,
        dialect: str,
        fetch: Fetch,
        *,
        name_of: Callable[[str], str] = lambda name: name,
        published: Mapping[str, int | None] | None = None,
        skip_volume: bool = False,
        batch: bool = False,
    ):
        self.project, self.dialect, self.fetch, self.name_of = project, dialect, fetch, name_of
        self.published = published
        self.skip_volume = skip_volume
        self.batch = batch

    def run_all(self, tests: Sequence[DataTest]) -> list[TestOutcome]:
        """Run tests, in order; with ``batch``, those a probe shows passing cost one query per relation."""
        passed = self._probed(tests) if self.batch else {}
        return [passed.get(index) or self.run(test) for index, test in enumerate(tests)]

    def _probed(self, tests: Sequence[DataTest]) -> dict[int, TestOutcome]:
        """The tests (by index) that one aggregate query per relation shows passing."""
        by_table: dict[str, dict[int, tuple[str, int]]] = {}
        for index, test in enumerate(tests):
            one = probe(test, self.project) if test.relation in self.project.relations else None
            if one is not None:
                by_table.setdefault(self.name_of(test.relation), {})[index] = one
        passed = {}
        for table, found in by_table.items():
            began = time.monotonic()
            try:
                result = self.fetch(probes(table, [sql for sql, _ in found.values()]), 1)
            except ConveyorError:  # a test's SQL does not run: run() tells which
                continue
            seconds = (time.monotonic() - began) / len(found)
            for (index, (_, most)), value in zip(found.items(), result.rows[0], strict=True):
                if value is not None and int(value) <= most:
                    test = tests[index]
                    passed[index] = TestOutcome(test, "succeeded", sql=self._published_sql(test), seconds=seconds)
        return passed

    def run(self, test: DataTest) -> TestOutcome:
        began = time.monotonic()
        try:
            outcome = self._evaluate(test)
        except ConveyorError as exc:
            outcome = TestOutcome(test, "failed", message=f"the test query failed: {scrub(exc.message)}")
            outcome.sql = self._published_sql(test)
        except Exception as exc:  # a test that cannot even be written fails, it never stops the build
            outcome = TestOutcome(test, "failed", message=scrub(f"the test cannot run: {type(exc).__name__}: {exc}"))
        outcome.seconds = time.monotonic() - began
        if outcome.status == "failed" and test.severity == "warn":
            outcome.status = "warned"
        return outcome

    def _evaluate(self, test: DataTest) -> TestOutcome:
        if test.kind in VOLUME_KINDS:
            return self._volume(test)
        sql = failing_rows(test, self.project, self.name_of, self.dialect)
        result = self.fetch(with_count(sql, SAMPLE_ROWS), SAMPLE_ROWS)
        reproduce = self._published_sql(test)
        if not result.rows:
            return TestOutcome(test, "succeeded", sql=reproduce)
        index = result.columns.index(FAILURES_COLUMN)
        total = int(result.rows[0][index])
        rows = [
            {name: jsonable(value) for name, value in zip(result.columns, row, strict=True) if name != FAILURES_COLUMN}
            for row in result.rows
        ]
        what = "value" if test.kind == "unique" else "row"
        message = f"{total:,} failing {what}{'' if total == 1 else 's'}"
        return TestOutcome(test, "failed", total, rows, reproduce, message)

    def _published_sql(self, test: DataTest) -> str | None:
        if test.kind in VOLUME_KINDS:
            return row_count(test, lambda name: name)
        try:
            return failing_rows(test, self.project, lambda name: name, self.dialect)
        except (ValueError, ConveyorError):
            return None

    def _volume(self, test: DataTest) -> TestOutcome:
        assert test.entry is not None
        reproduce = row_count(test, lambda name: name)
        if self.skip_volume:
            return TestOutcome(test, "skipped", sql=reproduce, message="relations hold no rows (--skip-copy)")
        result = self.fetch(row_count(test, self.name_of), 1)
        count = int(result.rows[0][0])
        if test.entry.row_count is not None:
            low, high = test.entry.row_count.min, test.entry.row_count.max
            if (low is not None and count < low) or (high is not None and count > high):
                bounds = f"between {low if low is not None else 0:,} and {high:,}" if high is not None else f"≥ {low:,}"
                message = f"{count:,} rows, expected {bounds}"
                return TestOutcome(test, "failed", 1, [{"rows": count, "min": low, "max": high}], reproduce, message)
            return TestOutcome(test, "succeeded", sql=reproduce)
        change = test.entry.row_count_change
        assert change is not None
        before = None if self.published is None else self.published.get(test.relation)
        if before is None:
            note = "nothing published to compare with" if self.published is not None else "no build to compare"
            return TestOutcome(test, "succeeded" if self.published is not None else "skipped", sql=reproduce,
                               message=note)  # fmt: skip
        moved = Decimal(count - before) / Decimal(before) if before else Decimal(0 if count == 0 else 1)
        broken = (change.max_drop is not None and -moved > percent(change.max_drop)) or (
            change.max_growth is not None and moved > percent(change.max_growth)
        )
        if broken:
            message = f"{before:,} → {count:,} rows ({moved:+.1%}), allowed " + ", ".join(
                f"{label} {value}"
                for label, value in (("drop", change.max_drop), ("growth", change.max_growth))
                if value is not None
            )
            return TestOutcome(test, "failed", 1, [{"published": before, "built": count}], reproduce, message)
        return TestOutcome(test, "succeeded", sql=reproduce)


def record(ctx: RunContext, outcome: TestOutcome) -> None:
    """One tracking-store event per test, and a line of progress."""
    record_all(ctx, [outcome])


def record_all(ctx: RunContext, outcomes: Sequence[TestOutcome], batch: TestEvents | None = None) -> None:
    """The events of several tests, recorded in one transaction (or added to ``batch``), and a
    line of progress for each."""
    finished = datetime.now(UTC)
    events = [_event(ctx, outcome, finished) for outcome in outcomes]
    if batch is not None:
        batch.add(events)
    else:
        ctx.tracking.record_events(ctx.run_id, events)
    for outcome in outcomes:
        shown = outcome.describe() if outcome.status in ("failed", "warned") else outcome.message
        ctx.reporter.finished(outcome.test.relation, ctx.label(TEST_STEP), outcome.status, None, shown)


def _event(ctx: RunContext, outcome: TestOutcome, finished: datetime) -> FinishedEvent:
    started = datetime.fromtimestamp(finished.timestamp() - outcome.seconds, UTC)
    return FinishedEvent(
        outcome.test.relation, TEST_STEP, outcome.status, started_at=started, finished_at=finished,
        error=outcome.message, detail=outcome.detail(), environment=ctx.environment,
    )  # fmt: skip


class TestEvents:
    """The test events of a build, written to the tracking store in batches (thread-safe).

    One transaction per ``size`` events, or once ``seconds`` passed since the last one, and
    whatever is left at :meth:`flush` (the build calls it when its relations are done, before
    deciding to publish): a build of many small relations does not pay one transaction per
    relation. Events keep the order they were added in.
    """

    def __init__(self, ctx: RunContext, *, size: int = 200, seconds: float = 1.0):
        self.ctx, self.size, self.seconds = ctx, size, seconds
        self._pending: list[FinishedEvent] = []
        self._written = time.monotonic()
        self._lock = threading.Lock()

    def add(self, events: Sequence[FinishedEvent]) -> None:
        with self._lock:
            self._pending.extend(events)
            if len(self._pending) >= self.size or time.monotonic() - self._written >= self.seconds:
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        pending, self._pending = self._pending, []
        self._written = time.monotonic()
        if pending:
            self.ctx.tracking.record_events(self.ctx.run_id, pending)


def run_tests(
    ctx: RunContext, tester: Tester, tests: Sequence[DataTest], batch: TestEvents | None = None
) -> list[TestOutcome]:
    """Run and record tests (a build runs each relation's tests on its worker, ``batch`` collects their events)."""
    outcomes = tester.run_all(tests)
    record_all(ctx, outcomes, batch)
    return outcomes


def jsonable(value: Any) -> Any:
    """A query value as JSON keeps it exactly: decimals and instants as text, bytes as hex."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, datetime | date | clock):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)
