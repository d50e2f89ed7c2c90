"""The ``arrow`` job type: the source's own reader streams Arrow batches into Parquet parts,
partitioned by ``split_by`` across the worker pool."""

from __future__ import annotations

import functools
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor import cancel
from conveyor.design.types import parse_type
from conveyor.extract import incremental
from conveyor.extract.jobs import ExtractJob
from conveyor.extract.runners.base import (
    PartitionStopped,
    Runner,
    RunnerInput,
    RunnerOutput,
    next_watermark,
    plan_incremental,
    read_request,
    run_tasks,
)
from conveyor.extract.runners.pipeline import read_ahead
from conveyor.lake.manifest import PartFile
from conveyor.sources import open_source, partition
from conveyor.sources.base import ReadRequest, Source


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
            request = read_request(job, source, columns, inc, given)
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
        watermark = next_watermark(inc, given.previous_watermark)
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
    The source reads on a thread of its own, ahead of the writer by at most the budget's
    queue (``given.budget``).
    """
    prefix = "part" if total == 1 else f"part-{index:03d}"
    high_water = None
    if job.incremental_cursor:
        high_water = incremental.HighWater(job.incremental_cursor, dict(request.columns)[job.incremental_cursor])
    schema = request.arrow_schema
    budget = given.budget
    with open_source(job.source_type, job.source, given.dsn, root=given.root, zero_dates=job.zero_dates) as source:
        writer = given.part_writer(schema, prefix)
        try:
            for batch in read_ahead(source.read(request, snapshot=snapshot), budget.queue_bytes):
                if stop is not None and stop.is_set():
                    raise PartitionStopped(
                        f'"{job.relation}": partition {index + 1} of {total} stopped: another failed.'
                    )
                cancel.check()
                if floor is not None:
                    batch = _at_or_above(batch, job.incremental_cursor or "", floor)
                writer.write(batch)
                if given.progress is not None:
                    given.progress(batch.num_rows)
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


def _query_text(source: Source, request: ReadRequest) -> str:
    render = getattr(source, "select_sql", None)
    text = render(request) if render else f"SELECT ... FROM {request.schema}.{request.table}"
    if request.params:
        text += "  -- parameters: " + ", ".join(repr(p) for p in request.params)
    return text
