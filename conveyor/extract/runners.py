"""Runners: how one table's extract executes, chosen by its ``job_type``.

A runner reads the job, writes Parquet parts into the extract folder it is given and
returns what it wrote. It never commits: the orchestrator writes the manifest (the commit)
only after the runner returned, so a runner that crashes leaves nothing a reader trusts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conveyor import cancel
from conveyor.config.secrets import scrub
from conveyor.design.types import parse_type
from conveyor.errors import ExtractError, UserError, did_you_mean
from conveyor.extract import incremental
from conveyor.extract.jobs import JOB_TYPES, ExtractJob
from conveyor.lake.lake import PartWriter
from conveyor.lake.manifest import PartFile
from conveyor.sources import open_source, partition
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


class Runner(ABC):
    """Executes extract jobs of one job type."""

    JOB_TYPE: ClassVar[str] = ""

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


class ArrowRunner(Runner):
    """In-process: upstream cursor -> Arrow batches -> Parquet parts (the default).

    A table with ``split_by`` (or, on PostgreSQL, any large table) is read in partitions on
    the shared worker pool, every partition from the same snapshot where the engine can
    share one (see docs/extract.md).
    """

    JOB_TYPE = "arrow"

    def run(self, job: ExtractJob, given: RunnerInput) -> RunnerOutput:
        columns = tuple((name, parse_type(type_text)) for name, type_text in job.columns)
        if job.split_by is not None and job.split_by in dict(columns):
            partition.check_split_type(dict(columns)[job.split_by], job.relation, job.split_by)
        with open_source(job.source_type, job.source, given.dsn, root=given.root, zero_dates=job.zero_dates) as source:
            inc = plan_incremental(job, source, given.previous_watermark)
            request = ReadRequest(
                schema=job.upstream_schema or source.default_schema() or "",
                table=job.upstream_table,
                columns=columns,
                where=combine(job.condition, inc.where),
                params=inc.params,
                batch_rows=given.batch_rows,
            )
            check_columns(job, source, request)
            count = _partition_count(job, source, request, given.workers)
            with source.snapshot() if count > 1 else nullcontext(None) as snapshot:
                requests = partition.split(source, request, job.split_by, dict(columns).get(job.split_by or ""), count)
                floor = None if source.CURSOR_BOUND_EXACT or inc.low is None else inc.low
                stop = threading.Event()  # one partition failed: the others stop at their next batch
                tasks = [
                    functools.partial(_read_partition, job, given, part, index, len(requests), snapshot, floor, stop)
                    for index, part in enumerate(requests)
                ]
                results = run_tasks(given.pool, tasks, stop)
            query = _query_text(source, request)
        parts = [p for r in results for p in r.parts]
        if inc.high_water is not None:
            inc.high_water.value = max((r.high for r in results if r.high is not None), default=None)
        watermark = _watermark(inc, given.previous_watermark)
        detail = {"partitions": len(requests)} if len(requests) > 1 else {}
        warnings = [w for r in results for w in r.warnings]
        return RunnerOutput(parts, request.arrow_schema, query, watermark, inc.is_increment, detail, warnings)


def _partition_count(job: ExtractJob, source: Source, request: ReadRequest, workers: int) -> int:
    """The configured partition count, or one from the table's size when it is not fixed."""
    if not source.SUPPORTS_SPLIT or (job.split_by is None and not source.SUPPORTS_CTID):
        return 1
    if job.partitions is not None:
        return job.partitions
    return partition.auto_count(source.row_estimate(request.schema, request.table), workers)


class PartitionStopped(ExtractError):
    """A partition read stopped because another partition of the table failed."""


@dataclass
class _PartitionResult:
    parts: list[PartFile]
    high: Any = None
    warnings: list[str] = field(default_factory=list)


def _read_partition(
    job: ExtractJob,
    given: RunnerInput,
    request: ReadRequest,
    index: int,
    total: int,
    snapshot: str | None,
    floor: Any = None,
    stop: threading.Event | None = None,
) -> _PartitionResult:
    """Read one partition on its own connection into its own numbered parts.

    ``floor`` is the incremental bound when the source's own predicate is not exact
    (``Source.CURSOR_BOUND_EXACT``): rows whose cursor is below it are dropped here, exactly.
    ``stop`` set (another partition failed) or a cancelled run ends the read at its next batch.
    """
    prefix = "part" if total == 1 else f"part-{index:03d}"
    high_water = None
    if job.incremental_cursor:
        high_water = incremental.HighWater(job.incremental_cursor, dict(request.columns)[job.incremental_cursor])
    with open_source(job.source_type, job.source, given.dsn, root=given.root, zero_dates=job.zero_dates) as source:
        writer = PartWriter(
            given.folder, request.arrow_schema, prefix=prefix, part_rows=given.part_rows, compression=given.compression
        )
        try:
            for batch in source.read(request, snapshot=snapshot):
                if stop is not None and stop.is_set():
                    raise PartitionStopped(
                        f'"{job.relation}": partition {index + 1} of {total} stopped: another failed.'
                    )
                cancel.check()
                if floor is not None:
                    batch = _at_or_above(batch, job.incremental_cursor or "", floor)
                writer.write(batch)
                if high_water is not None:
                    high_water.update(batch)
            parts = writer.close()
        except BaseException:
            if stop is not None:
                stop.set()
            writer.abort()
            raise
    return _PartitionResult(parts, high_water.value if high_water else None, list(source.notices))


def _at_or_above(batch: pa.RecordBatch, cursor: str, floor: Any) -> pa.RecordBatch:
    """The rows of ``batch`` whose cursor is at or above ``floor`` (NULL cursors are dropped, as SQL's ``>=`` does)."""
    column = batch.column(batch.schema.get_field_index(cursor))
    keep = pc.greater_equal(column, pa.scalar(floor, type=column.type))
    return batch.filter(pc.fill_null(keep, False))


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


def _query_text(source: Source, request: ReadRequest) -> str:
    render = getattr(source, "select_sql", None)
    text = render(request) if render else f"SELECT ... FROM {request.schema}.{request.table}"
    if request.params:
        text += "  -- parameters: " + ", ".join(repr(p) for p in request.params)
    return text


def _watermark(inc: IncrementalPlan, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if inc.high_water is None:
        return None
    if inc.high_water.value is None and previous:
        # nothing new: the watermark stays where it was
        return {**previous, "low": previous.get("value")}
    return inc.high_water.watermark(inc.low)


class CommandRunner(Runner):
    """An external program from a template: the container analog.

    The template may use ``{job_file}``, ``{folder}``, ``{relation}``, ``{source}`` and
    ``{table}``. The program gets the job as JSON (in ``{job_file}`` and ``$CONVEYOR_JOB``),
    the extract folder in ``$CONVEYOR_EXTRACT_DIR`` and the source's resolved DSN in
    ``$CONVEYOR_SOURCE_DSN`` (never on the command line, where other users could see it).
    It must leave ``part-*.parquet`` files in the folder, with the design's exact schema,
    and exit 0.
    """

    JOB_TYPE = "command"

    def run(self, job: ExtractJob, given: RunnerInput) -> RunnerOutput:
        if not job.command:
            raise UserError(f'"{job.relation}" has job_type command but no extract.command template.')
        job_file = given.folder.parent / f".{given.folder.name}.job.json"
        job_json = job.to_json()
        job_file.write_text(job_json, encoding="utf-8")
        try:
            argv = self._argv(job, given.folder, job_file)
            env = {
                **os.environ,
                "CONVEYOR_JOB": job_json,
                "CONVEYOR_EXTRACT_DIR": str(given.folder),
                "CONVEYOR_SOURCE_DSN": given.dsn,
            }
            self._execute(job, argv, env, given)
        finally:
            job_file.unlink(missing_ok=True)
        expected = arrow_schema(job)
        parts = collect_parts(given.folder, expected, job.relation)
        return RunnerOutput(parts, expected, f"command: {' '.join(argv)}")

    @staticmethod
    def _argv(job: ExtractJob, folder: Path, job_file: Path) -> list[str]:
        values = {
            "job_file": str(job_file),
            "folder": str(folder),
            "relation": job.relation,
            "source": job.source,
            "table": job.upstream_name,
        }
        try:
            return [part.format(**values) for part in shlex.split(job.command or "")]
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(
                f'the extract.command of "{job.relation}" is not a valid template: {exc}.',
                hint="Use {job_file}, {folder}, {relation}, {source} and {table}.",
            ) from None

    @staticmethod
    def _execute(job: ExtractJob, argv: list[str], env: dict[str, str], given: RunnerInput) -> None:
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=given.timeout_s, cwd=given.root, check=False
            )
        except FileNotFoundError:
            raise ExtractError(f'the extract command of "{job.relation}" was not found: {argv[0]}.') from None
        except subprocess.TimeoutExpired:
            raise ExtractError(
                f'the extract command of "{job.relation}" timed out after {given.timeout_s} s.'
            ) from None
        if done.returncode != 0:
            tail = scrub("\n".join((done.stderr or done.stdout).strip().splitlines()[-5:]))
            raise ExtractError(f'the extract command of "{job.relation}" exited with {done.returncode}: {tail}')


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


class _SparkRunner(Runner):
    """The ``spark`` job type, imported on first use (see conveyor/extract/spark_runner.py)."""

    JOB_TYPE = "spark"

    def run(self, job: ExtractJob, given: RunnerInput) -> RunnerOutput:
        from conveyor.extract.spark_runner import SparkRunner

        return SparkRunner().run(job, given)


RUNNERS: dict[str, type[Runner]] = {"arrow": ArrowRunner, "command": CommandRunner}
RUNNERS["spark"] = _SparkRunner
assert tuple(RUNNERS) == JOB_TYPES, "conveyor.extract.jobs.JOB_TYPES names every runner"


def runner_for(job_type: str) -> Runner:
    """The runner of a job type (the seed's "Choose Job Type" state)."""
    if job_type not in RUNNERS:
        raise UserError(
            f'job type "{job_type}" is not available in this version of Conveyor.',
            hint=f"Available: {', '.join(sorted(RUNNERS))}.",
        )
    return RUNNERS[job_type]()


def job_json(job: ExtractJob) -> dict[str, Any]:
    """The job as the dict a command receives."""
    return json.loads(job.to_json())
