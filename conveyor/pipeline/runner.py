"""Run a pipeline once: setup, the dead-man /start ping, the steps, the final ping, notifications.

All steps of one run share one tracking-store run, so ``conveyor runs show RUN`` shows every
step and relation. Extraction happens once: the secondary environment is loaded from
exactly the extracts the primary was loaded from. A failed step is retried up to
``retries`` times; the first step that still fails ends the run. A stop request (SIGTERM)
lets the current step finish and cleanly cancels the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from conveyor.config.secrets import resolve, scrub
from conveyor.errors import ConveyorError, Location
from conveyor.extract.extract import extract
from conveyor.extract.freshness import measure, too_old
from conveyor.extract.jobs import plan
from conveyor.lake.manifest import Manifest
from conveyor.load.build import BuildOptions, BuildResult, build
from conveyor.load.update import update, with_dependents
from conveyor.pipeline import deadman, notify
from conveyor.pipeline.definitions import Pipeline
from conveyor.pipeline.locks import hold, lock_names
from conveyor.project import Project, Relation
from conveyor.runctx import Reporter, RunContext, RunLifecycle, open_environment, open_tracking, whole_schemas
from conveyor.tracking.runs import new_run_id
from conveyor.tracking.store import TrackingStore
from conveyor.validate.preflight import preflight
from conveyor.warehouse import engine_class, open_warehouse

log = logging.getLogger("conveyor.pipeline")


@dataclass
class StepResult:
    """One step of a pipeline run, in one environment."""

    step: str
    environment: str | None
    ok: bool
    attempts: int = 1
    error: str | None = None


@dataclass
class PipelineOutcome:
    """How a pipeline run ended."""

    run_id: str
    pipeline: str
    status: str  # succeeded | failed | cancelled
    seconds: float
    steps: list[StepResult] = field(default_factory=list)
    report: notify.RunReport | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class StepFailed(Exception):
    """A step finished without succeeding; the message says why."""


@dataclass
class _State:
    """What the steps of one run share."""

    ctx: RunContext
    pipeline: Pipeline
    relations: list[Relation]
    deadline: float
    stop: threading.Event
    rows_extracted: int = 0
    rows_loaded: int = 0
    failed: list[str] = field(default_factory=list)
    pinned: dict[str, list[Manifest]] | None = None
    problems: Sequence[ConveyorError] = ()  # why the project did not load completely


def run_pipeline(
    project: Project,
    pipeline: Pipeline,
    *,
    run_id: str | None = None,
    scheduled_for: datetime | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    problems: Sequence[ConveyorError] = (),
) -> PipelineOutcome:
    """Run ``pipeline`` once, now, in this process, holding its locks.

    The pipeline's lock and one per environment it writes are taken first (a busy one is a
    ``UserError`` naming its holder, and nothing is recorded), so two runs of one pipeline, or
    two pipelines writing one environment, never overlap, whoever starts them: the command,
    the scheduler or a library caller.

    ``problems`` are why the project did not load completely (``Project.collect``): the run
    then fails at once, recorded and notified, unless its first step is ``validate``, which
    reports them itself.
    """
    config = pipeline.config
    began = time.monotonic()
    with _environment(config.runtime.env, config.runtime.spark_master):
        tracking = open_tracking(project)
        try:
            run_id = run_id or new_run_id()
            # a scheduled run waits for a run that took its locks after the scheduler saw them
            # free (a manual run, while this process started); any other run is refused
            waited = config.timeout_s if scheduled_for else 0.0
            told = (reporter or Reporter()).message
            with hold(tracking, lock_names(pipeline.name, config), run_id, wait_s=waited, waiting=told, stop=stop):
                return _run_held(project, pipeline, tracking, run_id, began, scheduled_for, reporter, stop, problems)
        finally:
            tracking.close()


def _run_held(
    project: Project,
    pipeline: Pipeline,
    tracking: TrackingStore,
    run_id: str,
    began: float,
    scheduled_for: datetime | None,
    reporter: Reporter | None,
    stop: threading.Event | None,
    problems: Sequence[ConveyorError],
) -> PipelineOutcome:
    config = pipeline.config
    life = RunLifecycle(
        project, "pipeline", environment=config.environments.primary, selection=config.selection,
        reporter=reporter, jobs=config.runtime.jobs, pipeline=pipeline.name, run_id=run_id, tracking=tracking,
    )  # fmt: skip
    ctx = life.ctx
    state = _State(
        ctx, pipeline, project.select(config.selection), began + config.timeout_s, stop or threading.Event(),
        problems=problems,
    )  # fmt: skip
    outcome = PipelineOutcome(run_id, pipeline.name, "running", 0.0)
    with life:
        try:
            _run(state, outcome, scheduled_for)
        except KeyboardInterrupt as exc:  # Ctrl-C: the statements in flight were cancelled (conveyor/cancel.py)
            outcome.status = "cancelled"
            outcome.steps.append(StepResult("cancel", None, False, error=str(exc) or "cancelled by Ctrl-C (SIGINT)"))
            raise
        finally:
            _finish(state, outcome, began, life)
    return outcome


def _run(state: _State, outcome: PipelineOutcome, scheduled_for: datetime | None) -> None:
    config = state.pipeline.config
    if state.problems and config.step_list[0] != "validate":
        error = _failure(state, [(p.render(), _relation_of(p.location)) for p in state.problems])
        outcome.status = "failed"
        outcome.steps.append(StepResult("project", None, False, error=scrub(error)))
        return
    try:
        _refuse_unsupported(state)
        if config.step_list[0] != "validate":  # a validate step reports all of it itself
            pipeline_preflight(state.ctx.project, state.pipeline)
    except ConveyorError as exc:
        outcome.status = "failed"
        outcome.steps.append(StepResult("check", None, False, error=_text(exc)))
        return
    try:
        _setup(state)
    except (StepFailed, ConveyorError) as exc:
        outcome.status = "failed"
        outcome.steps.append(StepResult("setup", None, False, error=_text(exc)))
        return
    when = f" (scheduled for {scheduled_for.isoformat()})" if scheduled_for else ""
    body = (
        f"Run {state.ctx.run_id} of pipeline {state.pipeline.name} started{when}.\n"
        f"Environments: {', '.join(state.pipeline.environments)}.\n"
        f"Steps: {', '.join(config.step_list)}."
    )
    deadman.ping(_deadman_urls(state), "start", body)
    for step in config.step_list:
        if state.stop.is_set():
            outcome.status = "cancelled"
            outcome.steps.append(StepResult(step, None, False, error="stopped before this step (SIGTERM)"))
            return
        for environment in _environments(state, step):
            result = _attempt(state, step, environment)
            outcome.steps.append(result)
            if not result.ok:
                outcome.status = "failed"
                return
    outcome.status = "succeeded"


def _refuse_unsupported(state: _State) -> None:
    """A step its environment's engine cannot run fails the run before any step (nothing is extracted)."""
    for step in state.pipeline.config.step_list:
        operation = {"load": "load", "load_skip_copy": "load", "update": "update"}.get(step)
        for environment in _environments(state, step) if operation else []:
            name, config = state.ctx.project.environment(environment)
            if operation not in engine_class(config.type).OPERATIONS:  # no DSN needed to say so
                open_warehouse(config.type, name, "", config=config).require(operation or "")


def pipeline_preflight(project: Project, pipeline: Pipeline) -> None:
    """What validate can tell without a database about what the pipeline's steps will do (raises PreflightError).

    A pipeline with setup commands is not asked about its sources: a setup command may make them.
    """
    config = pipeline.config
    steps = config.step_list
    relations = whole_schemas(project, project.select(config.selection))
    builds = [step for step in steps if step in ("load", "load_skip_copy", "update")]
    extracts = "extract" in steps and not config.setup
    envs = list(pipeline.environments) if builds else []
    for index, env in enumerate(envs or [None]):
        preflight(project, relations, extract=extracts and index == 0, environment=env, build=bool(builds))


def _environments(state: _State, step: str) -> list[str | None]:
    envs = state.pipeline.config.environments
    if step in ("load", "update"):
        return list(state.pipeline.environments)
    if step == "load_skip_copy":
        return [envs.scratch or envs.primary]
    return [None]


def _attempt(state: _State, step: str, environment: str | None) -> StepResult:
    retries = state.pipeline.config.retries
    error = None
    for attempt in range(1, retries + 2):
        if time.monotonic() > state.deadline:
            return StepResult(
                step,
                environment,
                False,
                attempt,
                f"the run exceeded its timeout of {state.pipeline.config.timeout_s:.0f} s",
            )
        try:
            STEPS[step](state, environment)
            return StepResult(step, environment, True, attempt)
        except (StepFailed, ConveyorError) as exc:
            error = _text(exc)
            state.ctx.reporter.message(f"step {step} failed (attempt {attempt}): {error}", "warning")
    return StepResult(step, environment, False, retries + 1, error)


def _text(exc: BaseException) -> str:
    return scrub(exc.render() if isinstance(exc, ConveyorError) else str(exc))


def _setup(state: _State) -> None:
    """Run the setup commands; the dead-man /start ping waits for them."""
    for command in state.pipeline.config.setup:
        remaining = max(1.0, state.deadline - time.monotonic())
        with state.ctx.step(command, "setup"):
            try:
                done = _shell(command, state.ctx.project.root, remaining)
            except subprocess.TimeoutExpired:
                raise StepFailed(f"setup command timed out: {command}") from None
            if done.returncode != 0:
                tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
                raise StepFailed(f"setup command {command!r} exited with {done.returncode}: {tail}")


def _shell(command: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a shell command in a process group of its own, so a timeout stops all of it (not just the shell)."""
    process = subprocess.Popen(
        command, shell=True, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _extract(state: _State, environment: str | None) -> None:
    project = state.ctx.project
    relations = whole_schemas(project, state.relations)
    summary = extract(state.ctx, plan(project, relations))
    state.rows_extracted += summary.rows
    if summary.failed:
        state.failed.extend(r.relation for r in summary.failed)
        raise StepFailed(
            f"extract failed for {', '.join(r.relation for r in summary.failed)}: {summary.failed[0].error}"
        )


def _load(state: _State, environment: str | None, *, skip_copy: bool = False) -> None:
    project = state.ctx.project
    warehouse = open_environment(project, environment)
    relations = whole_schemas(project, state.relations)
    options = BuildOptions(
        skip_copy=skip_copy,
        pinned=None if skip_copy else state.pinned,
        required=tuple(state.pipeline.config.required),
    )
    # a retry under the same run id starts afresh: a new build drops the failed attempt's kept one
    result = build(_in(state, environment), relations, warehouse, options)
    _check_result(state, result, f"load into {environment}")
    if not skip_copy and state.pinned is None:
        state.pinned = dict(result.manifests)  # the secondary loads exactly these extracts


def _update(state: _State, environment: str | None) -> None:
    project = state.ctx.project
    warehouse = open_environment(project, environment)
    result = update(_in(state, environment), with_dependents(project, state.relations), warehouse, pinned=state.pinned)
    _check_result(state, result, f"update of {environment}")
    if state.pinned is None:
        state.pinned = dict(result.manifests)  # the secondary gets exactly these extracts


def _in(state: _State, environment: str | None) -> RunContext:
    """The run's context for a step in ``environment``: events record it, progress names it when
    the pipeline loads two environments (else both would show the same labels)."""
    return state.ctx.in_environment(environment, label=len(state.pipeline.environments) > 1)


def _check_result(state: _State, result: BuildResult, what: str) -> None:
    if result.published:  # rows of a build that was thrown away were never loaded
        state.rows_loaded += sum(result.rows.values())
    failed = [n for n, s in result.status.items() if s == "failed"]
    state.failed.extend(n for n in failed if n not in state.failed)
    if not result.published or result.errors:
        first = next(iter(result.errors.values()), result.reason or "")
        raise StepFailed(f"{what} failed: {first}")


def _validate(state: _State, environment: str | None) -> None:
    """Check the project as ``conveyor validate`` does, re-read from disk: designs, SQL,
    dependencies, and the selected source tables against their live upstream tables (drift)."""
    from conveyor.validate import validate

    with state.ctx.step("*", "validate") as outcome:
        report = validate(state.ctx.project.root, state.pipeline.config.selection, sources=True, sql=False)
        outcome.detail.update(errors=len(report.errors), warnings=len(report.warnings))
        if not report.ok:
            raise StepFailed(
                _failure(state, [(p.render(), p.relation) for p in report.sorted() if p.severity == "error"])
            )


def _failure(state: _State, errors: list[tuple[str, str | None]]) -> str:
    """Note the relations of ``errors`` (text, relation) as failed; the message names the first error."""
    state.failed.extend(r for _, r in errors if r and r not in state.failed)
    count = f"{len(errors)} error{'s' if len(errors) > 1 else ''}"
    return f"the project has {count}; the first: {errors[0][0]}"


def _relation_of(location: Location | None) -> str | None:
    """The relation whose file ``schemas/<schema>/<table>.<ext>`` a problem is in."""
    parts = Path(str(location.path)).parts if location else ()
    return f"{parts[1]}.{parts[2].rpartition('.')[0]}" if len(parts) == 3 and parts[0] == "schemas" else None


def _load_skip_copy(state: _State, environment: str | None) -> None:
    _load(state, environment, skip_copy=True)


def _freshness(state: _State, environment: str | None) -> None:
    """Gate on source freshness (docs/freshness.md): record each source table of the pipeline's schemas
    as an event; one past its error_after fails the step, one past its warn_after is recorded ``warned``."""
    project, ctx = state.ctx.project, state.ctx
    began = datetime.now(UTC)
    rows = measure(project, whole_schemas(project, state.relations), ctx.tracking, now=began)
    finished = datetime.now(UTC)
    for row in rows:
        text = row.describe() if row.status in ("warn", "error", "unknown") else None
        ctx.tracking.record_event(
            ctx.run_id, row.relation, "freshness", row.event_status, started_at=began, finished_at=finished,
            error=text if row.event_status != "succeeded" else None, detail=row.detail(),
        )  # fmt: skip
        if row.event_status == "warned":
            ctx.reporter.message(f"freshness: {text}", "warning")
    stale = too_old(rows)
    if stale:
        state.failed.extend(row.relation for row in rows if row.status == "error" and row.relation not in state.failed)
        raise StepFailed(stale)


STEPS = {
    "extract": _extract,
    "load": _load,
    "update": _update,
    "validate": _validate,
    "load_skip_copy": _load_skip_copy,
    "freshness": _freshness,
}


def _urls(state: _State, places: Sequence[tuple[tuple[str | int, ...], str]]) -> list[str]:
    """Resolve ${VAR} secrets in dead-man and notification URLs (``places``: key path, url).

    A URL whose secret is unset is left out with a warning: monitoring never fails the run,
    and one unset variable does not silence the other URLs.
    """
    creds = state.ctx.project.credentials
    resolved = []
    for loc, url in places:
        try:
            resolved.append(resolve(url, where=state.pipeline.location(*loc), credentials=creds, url=True))
        except ConveyorError as exc:
            state.ctx.reporter.message(f"cannot notify {url}: {exc.render()}", "warning")
    return resolved


def _deadman_urls(state: _State) -> list[str]:
    return _urls(state, [(("deadman", i), url) for i, url in enumerate(state.pipeline.config.deadman)])


def _finish(state: _State, outcome: PipelineOutcome, began: float, life: RunLifecycle) -> None:
    if outcome.status == "running":
        outcome.status = "failed"
    outcome.seconds = time.monotonic() - began
    first_error = next((s.error for s in outcome.steps if not s.ok and s.error), None)
    report = notify.RunReport(
        state.pipeline.name, state.ctx.run_id, state.pipeline.environments,
        "succeeded" if outcome.ok else outcome.status, outcome.seconds, state.rows_extracted, state.rows_loaded,
        state.failed, first_error,
    )  # fmt: skip
    outcome.report = report
    summary = {
        "steps": [vars(s) for s in outcome.steps],
        "rows_extracted": state.rows_extracted,
        "rows_loaded": state.rows_loaded,
        "failed": state.failed,
        "environments": state.pipeline.environments,
    }
    run_status = outcome.status if outcome.status in ("succeeded", "failed", "cancelled") else "failed"
    life.finish(run_status, error=first_error, summary=summary)
    event = "success" if outcome.ok else "failure"
    try:
        deadman.ping(_deadman_urls(state), "success" if outcome.ok else "fail", report.body)
        targets = [(("notify", i, "url"), t.url) for i, t in enumerate(state.pipeline.config.notify) if event in t.on]
        notify.send(_urls(state, targets), report)
    except ConveyorError as exc:  # an unset secret in a URL: say so, never fail the run for it
        state.ctx.reporter.message(f"could not notify: {exc.render()}", "warning")


@contextmanager
def _environment(variables: dict[str, str], spark_master: str | None) -> Iterator[None]:
    """Set the pipeline's runtime environment variables for the duration of the run."""
    wanted = dict(variables)
    if spark_master:
        wanted["CONVEYOR_SPARK_MASTER"] = spark_master
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
