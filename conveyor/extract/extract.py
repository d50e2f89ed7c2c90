"""Extract orchestration: map every job over one worker pool, catch failures per table.

Steps 3 to 6 of the orchestration (docs/extract.md): iterate the tables, choose the runner by job type, catch each
table's failure, and record status in the tracking store. The manifest is written (the
extract is committed) only after the runner finished; the tracking store learns about
the commit after that, so it never claims data the lake does not hold.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tenacity

from conveyor import cancel
from conveyor.config.secrets import scrub
from conveyor.design.types import parse_type
from conveyor.errors import ConveyorError, TransientError
from conveyor.extract import incremental
from conveyor.extract.budget import return_freed_memory
from conveyor.extract.jobs import ExtractJob
from conveyor.extract.overlap import drop_reread_rows
from conveyor.extract.runners import RunnerInput, RunnerOutput, runner_for
from conveyor.extract.runners.base import RunnerSession
from conveyor.faults import crash_point
from conveyor.lake.lake import ExtractFolder, Lake, lake_for
from conveyor.lake.manifest import Manifest
from conveyor.project import Project
from conveyor.runctx import RunContext


@dataclass
class TableResult:
    """How one table's extract ended."""

    relation: str
    status: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    extract_id: str | None = None
    error: str | None = None


@dataclass
class ExtractSummary:
    """Every table's result, in job order."""

    results: list[TableResult] = field(default_factory=list)

    @property
    def failed(self) -> list[TableResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.results)


def lake_of(ctx: RunContext) -> Lake:
    return lake_for(ctx.project.lake_location, ctx.tracking)


def extract(ctx: RunContext, jobs: list[ExtractJob], *, fail_fast: bool = False) -> ExtractSummary:
    """Extract every job's table; one table's failure does not stop the others."""
    ctx = ctx.in_environment(None)  # extracts belong to no environment: every environment loads them
    check_jobs(ctx.project, jobs)
    return_freed_memory()  # the budget bounds the peak (defaults.memory_budget_mib)
    ctx.reporter.phase("extract", len(jobs))
    summary = ExtractSummary()
    # with --fail-fast, a table that has not started when another failed does not start at all
    stop = threading.Event()

    sessions = open_sessions(ctx, jobs)

    def one(job: ExtractJob, pool: Executor) -> TableResult:
        if stop.is_set():
            return TableResult(job.relation, "skipped", error="not started: --fail-fast")
        if cancel.requested():
            return TableResult(job.relation, "skipped", error="not started: the run was cancelled")
        result = _extract_one(ctx, job, pool, sessions.get(job.job_type))
        if fail_fast and result.status == "failed":
            stop.set()
        return result

    finished = False
    try:
        with ThreadPoolExecutor(max_workers=max(1, ctx.jobs), thread_name_prefix="extract") as pool:
            futures = [pool.submit(one, job, pool) for job in jobs]
            summary.results = [future.result() for future in futures]
        finished = True
    finally:
        for session in sessions.values():
            session.close(kill=not finished)
        shutil.rmtree(_scratch(ctx), ignore_errors=True)
    return summary


def _scratch(ctx: RunContext) -> Path:
    """The run's scratch folder: in a local lake beside ``data/``, so no reader ever sees it
    (and on the same file system, so parts move into place by rename); for an object-store
    lake under the system's temporary directory."""
    root = lake_of(ctx).root
    return (root if root is not None else Path(tempfile.gettempdir()) / "conveyor-runs") / "_runs" / ctx.run_id


def open_sessions(ctx: RunContext, jobs: list[ExtractJob]) -> dict[str, RunnerSession]:
    """What each job type's runner shares across the run's tables (one Spark application, ...)."""
    sessions: dict[str, RunnerSession] = {}
    try:
        for job_type in dict.fromkeys(job.job_type for job in jobs):
            typed = [job for job in jobs if job.job_type == job_type]
            dsns = {job.source: ctx.project.source_dsn(job.source) for job in typed}
            session = runner_for(job_type).open_session(typed, _scratch(ctx) / job_type, dsns, ctx.project.root)
            if session is not None:
                sessions[job_type] = session
    except BaseException:
        for session in sessions.values():
            session.close(kill=True)
        raise
    return sessions


def check_jobs(project: Project, jobs: list[ExtractJob]) -> None:
    """Resolve every DSN and runner up front: bad input fails before anything is written."""
    for job in jobs:
        project.source_dsn(job.source)
        runner_for(job.job_type)


def _extract_one(
    ctx: RunContext, job: ExtractJob, pool: Executor | None = None, session: RunnerSession | None = None
) -> TableResult:
    began = time.monotonic()
    try:
        with ctx.step(job.relation, "extract") as outcome:
            manifest = _commit(ctx, job, pool, session)
            outcome.rows, outcome.bytes = manifest.rows, manifest.bytes
            outcome.detail["extract_id"] = manifest.extract_id
            outcome.detail["parts"] = len(manifest.files)
            if manifest.warnings:
                outcome.detail["warnings"] = manifest.warnings
                for warning in manifest.warnings:
                    ctx.reporter.message(f"{job.relation}: {warning}", "warning")
        return TableResult(
            job.relation, "succeeded", manifest.rows, manifest.bytes, time.monotonic() - began, manifest.extract_id
        )
    except Exception as exc:  # any failure is this table's; the others go on
        message = scrub(exc.render() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}")
        return TableResult(job.relation, "failed", seconds=time.monotonic() - began, error=message)


def _commit(ctx: RunContext, job: ExtractJob, pool: Executor | None, session: RunnerSession | None = None) -> Manifest:
    settings = ctx.project.settings
    lake = lake_of(ctx)
    dsn = ctx.project.source_dsn(job.source)
    started = datetime.now(UTC)
    wait_s = settings.lake.lock_timeout
    holder = f"run {ctx.run_id}"
    with lake.writing(job.source, job.relation, wait_s=wait_s, waiting=ctx.reporter.message, holder=holder) as target:
        extract_id = target.extract_id
        ctx.tracking.start_extract(ctx.run_id, job.source, job.relation, extract_id, upstream_table=job.upstream_name)
        try:
            given = RunnerInput(
                target.folder,
                dsn,
                ctx.project.root,
                batch_rows=settings.defaults.batch_rows,
                part_rows=settings.lake.part_rows,
                compression=settings.lake.compression,
                previous_watermark=_previous_watermark(ctx, lake, job),
                pool=pool,
                workers=ctx.jobs,
                session=session,
                memory_budget_bytes=settings.defaults.memory_budget_mib << 20,
                progress=functools.partial(ctx.reporter.rows, job.relation),
                target=target,
            )
            output = _with_retries(ctx, job, given)
            target.upload(output.parts)
            output = _without_overlap(lake, job, target, output, settings.lake.compression)
            manifest = Manifest(
                extract_id=extract_id,
                source=job.source,
                upstream_table=job.upstream_name,
                relation=job.relation,
                files=output.parts,
                arrow_schema=output.schema,
                query=scrub(output.query),
                started_at=started.isoformat(),
                finished_at=datetime.now(UTC).isoformat(),
                job_type=job.job_type,
                incremental=output.incremental,
                watermark=output.watermark,
                columns=[{"name": n, "type": t} for n, t in job.columns],
                warnings=scrub_all(output.warnings),
            )
            path = target.commit(manifest)
        except BaseException as exc:
            error = scrub(exc.render() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}")
            stopped = cancel.requested() or isinstance(exc, KeyboardInterrupt)  # Ctrl-C, SIGTERM: as `runs show` says
            ctx.tracking.finish_extract(extract_id, "cancelled" if stopped else "failed", error=error)
            raise
        # still under the relation's lock: a second extract waiting for it starts only once the
        # tracking store names this one and retention is done, so a late finish of this one can
        # never move the relation's state back behind the second's, nor prune beside it
        ctx.tracking.finish_extract(
            extract_id,
            "succeeded",
            rows=manifest.rows,
            bytes=manifest.bytes,
            manifest_path=path,
            watermark_low=_watermark_text(manifest, "low"),
            watermark_high=_watermark_text(manifest, "value"),
        )
        crash_point("extract.watermark.after_store")
        lake.prune(job.source, job.relation, settings.lake.keep, legacy=job.upstream_name)
    return manifest


def scrub_all(texts: list[str]) -> list[str]:
    return [scrub(text) for text in texts]


def _watermark_text(manifest: Manifest, key: str) -> str | None:
    """One end of the extract's cursor range (``low`` or the high ``value``) as the store keeps it."""
    if not manifest.watermark or manifest.watermark.get(key) is None:
        return None
    mark = manifest.watermark
    return json.dumps({"cursor": mark["cursor"], "type": mark["type"], "value": mark[key]}, sort_keys=True)


def _previous_watermark(ctx: RunContext, lake: Lake, job: ExtractJob) -> dict[str, Any] | None:
    """The committed high-water mark of this relation to continue from.

    The lake's newest manifest of the relation is the truth: the tracking store is updated
    just after a manifest is committed, so after a crash in between it may lag behind by
    one extract. Whichever names the later extract wins; the watermark never runs ahead of
    the lake. Tracking rows written before relations owned their rows (no
    ``upstream_table``) belong to an upstream table, not to this relation, and are ignored.
    """
    if job.full or not job.incremental_cursor:
        return None
    latest = lake.latest(job.source, job.relation, legacy=job.upstream_name)
    if latest is None:
        return None  # nothing in the lake to build on: start with a full extract
    if latest.watermark and latest.watermark.get("cursor") == job.incremental_cursor:
        return latest.watermark
    state = ctx.tracking.extract_state(job.source, job.relation)
    own = state[0] if state and state[0].upstream_table is not None else None
    stored = json.loads(own.watermark) if own and own.watermark else None
    # a watermark of another cursor says nothing about this one: start with a full extract
    return stored if stored and stored.get("cursor") == job.incremental_cursor else None


def _without_overlap(
    lake: Lake, job: ExtractJob, target: ExtractFolder, output: RunnerOutput, compression: str
) -> RunnerOutput:
    """Without a primary key, take the rows an increment re-read out of it (see overlap.py).

    With a key the re-read rows stay: a load merges them by key, and a row changed within
    the watermark's cursor tick must replace its old version.
    """
    mark = output.watermark
    if job.primary_key or not output.incremental or not mark or mark.get("low") is None or not output.parts:
        return output
    low = incremental.decode(mark["low"], parse_type(mark["type"]))
    chain = lake.chain(job.source, job.relation, legacy=job.upstream_name)
    parts = drop_reread_rows(
        target.store, target.key, output.parts, output.schema, chain, mark["cursor"], low, compression
    )
    return replace(output, parts=parts)


def _with_retries(ctx: RunContext, job: ExtractJob, given: RunnerInput) -> RunnerOutput:
    """Run the job, retrying transient failures with exponential backoff and jitter."""
    retry = ctx.project.settings.defaults.retry
    runner = runner_for(job.job_type)

    def attempt() -> RunnerOutput:
        if given.target is not None:
            given.target.clear()
        else:
            for leftover in given.folder.iterdir():
                leftover.unlink()
        return runner.run(job, given)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, TransientError) and not cancel.requested()),
        stop=tenacity.stop_after_attempt(retry.attempts),
        wait=tenacity.wait_random_exponential(multiplier=retry.initial_delay, max=retry.max_delay),
        before_sleep=lambda state: ctx.reporter.message(
            f"retrying {job.relation} after a transient error (attempt {state.attempt_number}): "
            f"{scrub(str(state.outcome.exception()) if state.outcome else '')}",
            "warning",
        ),
        reraise=True,
    )
    return retrying(attempt)
