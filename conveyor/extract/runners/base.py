"""What every runner shares: its input and output, incremental planning, column checks and
the task pool.

A runner reads the job, writes Parquet parts into the extract folder it is given and
returns what it wrote. It never commits: the orchestrator writes the manifest (the commit)
only after the runner returned, so a runner that crashes leaves nothing a reader trusts.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.design.types import SqlType, parse_type
from conveyor.errors import ExtractError, did_you_mean
from conveyor.extract import incremental
from conveyor.extract.budget import Budget
from conveyor.extract.jobs import ExtractJob
from conveyor.lake.lake import ExtractFolder
from conveyor.lake.manifest import PartFile
from conveyor.lake.parts import PartWriter
from conveyor.sources.base import ReadRequest, Source
from conveyor.sources.verdict import missing_column_error

T = TypeVar("T")


@dataclass
class RunnerInput:
    """What the orchestrator gives a runner besides the job."""

    folder: Path
    dsn: str
    root: Path
    batch_rows: int = 65_536
    part_rows: int = 1_000_000
    compression: str = "zstd"
    previous_watermark: dict[str, Any] | None = None
    timeout_s: float | None = None
    pool: Executor | None = None
    workers: int = 1
    session: RunnerSession | None = None
    """What the run's jobs of this type share (:meth:`Runner.open_session`), e.g. one Spark application."""
    memory_budget_bytes: int = 256 << 20
    progress: Callable[[int], None] | None = None
    """Told how many more rows were written, as they are (the CLI shows a live row count)."""
    target: ExtractFolder | None = None
    """The extract in the lake: a runner that streams parts (``arrow``) writes them straight to
    its store with :meth:`part_writer`; the others write files into ``folder``, which the
    orchestrator uploads when the lake is an object store."""

    def part_writer(self, schema: pa.Schema, prefix: str = "part") -> PartWriter:
        """A writer of numbered parts into the extract: straight into the lake's store when it
        is an object store, into ``folder`` otherwise."""
        rows = self.budget.row_group_rows(schema)
        if self.target is not None:
            return self.target.part_writer(
                schema, prefix=prefix, part_rows=self.part_rows, compression=self.compression, row_group_rows=rows
            )
        return PartWriter(
            self.folder,
            schema,
            prefix=prefix,
            part_rows=self.part_rows,
            compression=self.compression,
            row_group_rows=rows,
        )

    @property
    def budget(self) -> Budget:
        """What each read may hold: the process's budget shared among ``workers`` reads."""
        return Budget(self.memory_budget_bytes, self.workers, self.batch_rows)


@dataclass
class RunnerOutput:
    """What a runner wrote: parts, their schema, the query, and the watermark it reached."""

    parts: list[PartFile]
    schema: pa.Schema
    query: str
    watermark: dict[str, Any] | None = None
    incremental: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """What the read noticed and the run records (e.g. zero dates read as NULL)."""


class RunnerSession(Protocol):
    """State a runner keeps for all of one extract run's jobs of its type."""

    def close(self, *, kill: bool = False) -> None:
        """Release it at the end of the run (``kill``: the run failed or was cancelled; do not wait)."""


class Runner(ABC):
    """Executes extract jobs of one job type."""

    JOB_TYPE: ClassVar[str] = ""

    def open_session(
        self, jobs: list[ExtractJob], scratch: Path, dsns: dict[str, str], root: Path
    ) -> RunnerSession | None:
        """Start what the run's ``jobs`` of this type share, before any of them runs.

        ``scratch`` is a folder of the run inside the lake (not created yet), ``dsns`` the
        resolved DSN of every source of ``jobs``. Each job's :class:`RunnerInput` carries the
        session. None (the default): every job runs on its own.
        """
        return None

    @abstractmethod
    def run(self, job: ExtractJob, given: RunnerInput) -> RunnerOutput:
        """Extract one table into ``given.folder``; raise on failure."""


def arrow_schema(job: ExtractJob) -> pa.Schema:
    """The exact schema an extract of this job must have."""
    return pa.schema([pa.field(name, parse_type(type_text).arrow) for name, type_text in job.columns])


@dataclass
class IncrementalPlan:
    """The cursor predicate of one read, and where the high-water mark is tracked."""

    where: str | None
    params: tuple[object, ...]
    high_water: incremental.HighWater | None
    low: Any = None

    @property
    def is_increment(self) -> bool:
        return self.low is not None


def plan_incremental(job: ExtractJob, source: Source, previous: dict[str, Any] | None) -> IncrementalPlan:
    """Build the predicate ``cursor >= previous high-water mark - lag`` (none for a full read).

    The bound is inclusive: rows that share the high-water mark's cursor value but arrived
    after the previous extract (same second, same id tick) are read. The rows read again are
    merged by primary key at load, or, without a key, taken out before the commit
    (conveyor/extract/overlap.py).
    """
    if not job.incremental_cursor:
        return IncrementalPlan(None, (), None)
    cursor_type = incremental.cursor_type(job.columns, job.incremental_cursor, job.relation)
    incremental.check_cursor_type(cursor_type, job.relation, job.incremental_cursor)
    high_water = incremental.HighWater(job.incremental_cursor, cursor_type)
    lag = incremental.parse_lag(job.incremental_lag, cursor_type, job.relation)
    low = None if job.full else incremental.lower_bound(previous, cursor_type, lag)
    if low is None:
        return IncrementalPlan(None, (), high_water)
    where = source.cursor_bound(job.incremental_cursor, cursor_type)
    return IncrementalPlan(where, (low,), high_water, low)


def check_columns(job: ExtractJob, source: Source, request: ReadRequest) -> None:
    """Every column the read names (the design's columns and ``split_by``) exists upstream.

    Runs before any row is read. Some engines would not fail on their own: SQLite reads an
    unknown double-quoted name as a string literal, and a table small enough to be read in
    one partition never looks at ``split_by`` at all.
    """
    known = source.column_names(request.schema, request.table)
    if known is None:
        return
    keys = {source.column_key(name) for name in known}
    for name, _ in request.columns:
        if source.column_key(name) not in keys:
            raise missing_column_error(source.name, request.schema, request.table, name, known)
    if job.split_by is not None and source.column_key(job.split_by) not in keys:
        raise ExtractError(
            f'extract.split_by of "{job.relation}" names column "{job.split_by}", which does not exist in table '
            f'"{request.schema}.{request.table}" of source "{source.name}".' + did_you_mean(job.split_by, known),
            hint="Name an upstream column (a not-null key) in extract.split_by, or remove it.",
        )


def combine(*conditions: str | None) -> str | None:
    """AND together the non-empty conditions, each in parentheses."""
    present = [c for c in conditions if c]
    return " AND ".join(f"({c})" for c in present) if present else None


def read_request(
    job: ExtractJob,
    source: Source,
    columns: tuple[tuple[str, SqlType], ...],
    inc: IncrementalPlan,
    given: RunnerInput,
) -> ReadRequest:
    """What a runner reads of the job's upstream table (its condition and increment applied), its
    design's columns checked against the table first."""
    budget = given.budget
    request = ReadRequest(
        schema=job.upstream_schema or source.default_schema() or "",
        table=job.upstream_table,
        columns=columns,
        where=combine(job.condition, inc.where),
        params=inc.params,
        buffer_bytes=budget.buffer_bytes,
    )
    request = replace(request, batch_rows=budget.batch_rows(request.arrow_schema))
    check_columns(job, source, request)
    return request


class PartitionStopped(ExtractError):
    """A partition read stopped because another partition of the table failed."""


def run_tasks(pool: Executor | None, tasks: Sequence[Callable[[], T]], stop: threading.Event | None = None) -> list[T]:
    """Run tasks on the shared pool and return their results in order.

    The calling thread is itself a pool worker, so it must not just wait: every task that
    has not started yet is taken back (cancelled) and run here. It only ever waits for
    tasks that other workers are already running, so a pool full of waiting tables cannot
    deadlock.

    When a task fails, ``stop`` is set, the tasks not started are dropped, and the ones
    running are waited for before the error is raised: nothing of this attempt writes into
    the extract folder after it (a retry empties and refills it).
    """
    if pool is None or len(tasks) < 2:
        return [task() for task in tasks]
    futures = [pool.submit(task) for task in tasks[1:]]
    results: list[Any] = [tasks[0](), *([None] * len(futures))]
    try:
        pending = set(range(len(futures)))
        while pending:
            # take back a task nobody started yet and run it here; wait only when every
            # remaining task is running on another worker (so no worker sits idle)
            index = next((i for i in sorted(pending) if futures[i].cancel()), None)
            if index is None:
                for i in sorted(pending):
                    results[i + 1] = futures[i].result()
                break
            results[index + 1] = tasks[index + 1]()
            pending.discard(index)
    except BaseException as exc:
        if stop is not None:
            stop.set()
        for future in futures:
            future.cancel()
        wait(futures)
        if isinstance(exc, PartitionStopped):  # raise the failure that stopped it
            causes = [f.exception() for f in futures if not f.cancelled()]
            cause = next((c for c in causes if c is not None and not isinstance(c, PartitionStopped)), None)
            if cause is not None:
                raise cause from None
        raise
    return results


def next_watermark(inc: IncrementalPlan, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """The watermark a read reached: its high-water mark, or the previous one when it read nothing new."""
    if inc.high_water is None:
        return None
    if inc.high_water.value is None and previous:
        # nothing new: the watermark stays where it was
        return {**previous, "low": previous.get("value")}
    return inc.high_water.watermark(inc.low)


def collect_parts(folder: Path, expected: pa.Schema, relation: str) -> list[PartFile]:
    """Check the parts a program left behind and describe them for the manifest."""
    found = sorted(folder.glob("part-*.parquet"))
    if not found:
        raise ExtractError(f'the extract of "{relation}" left no part-*.parquet files in {folder}.')
    parts = []
    for path in found:
        schema = pq.read_schema(path)
        actual = pa.schema([schema.field(n) for n in expected.names if n in schema.names])
        if not actual.equals(expected, check_metadata=False):
            raise ExtractError(
                f'{path.name} of "{relation}" has schema {schema} but the design needs {expected}.',
                hint="Write exactly the design's columns with their Arrow types (see docs/types.md).",
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        parts.append(PartFile(path.name, pq.ParquetFile(path).metadata.num_rows, path.stat().st_size, digest))
    return parts


def job_json(job: ExtractJob) -> dict[str, Any]:
    """The job as the dict a command receives."""
    return json.loads(job.to_json())
