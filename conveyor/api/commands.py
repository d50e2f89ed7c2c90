"""The commands that change something: run, extract, load, update, upgrade, unload, what each would do
(``plan``), and the run each records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conveyor.config.secrets import scrub
from conveyor.config.settings import IDENTIFIER
from conveyor.errors import ConveyorError, LakeError, UserError, did_you_mean
from conveyor.extract.jobs import ExtractEvent, ExtractJob
from conveyor.extract.jobs import plan as plan_jobs
from conveyor.faults import crash_point
from conveyor.load import LOCK_TIMEOUT_S
from conveyor.project import Project, Relation
from conveyor.reporting import Reporter

if TYPE_CHECKING:  # the machinery (pyarrow, sqlglot, the drivers) loads when a command needs it
    from conveyor.extract.extract import ExtractSummary
    from conveyor.load.build import BuildResult
    from conveyor.quality.plan import DataTest
    from conveyor.quality.run import TestOutcome
    from conveyor.warehouse.base import Warehouse
from conveyor.api.reading import open_environment, whole_schemas


def preflight(project: Project, relations: Sequence[Relation], **what: Any) -> None:
    """What validate can tell without a database, before a command writes (see conveyor.validate.preflight)."""
    from conveyor.validate.preflight import preflight as check  # validate's modules, only when a command runs

    check(project, relations, **what)


@dataclass
class Outcome:
    """What a command did: its run id, extract and build results, and timing."""

    run_id: str
    command: str
    extract: ExtractSummary | None = None
    build: BuildResult | None = None
    seconds: float = 0.0
    warehouse: str | None = None
    lake: str | None = None
    notes: list[str] = field(default_factory=list)
    tests: list[TestOutcome] | None = None
    """``conveyor test``: the outcome of each test (a build's are in ``build.tests``)."""
    results: dict[str, Any] | None = None
    """The run's results document (docs/results.md), as written to ``.conveyor/run_results.json``."""
    results_path: str | None = None
    """The file it was written to, ``.conveyor/runs/<run id>.json`` (None if it could not be)."""

    @property
    def ok(self) -> bool:
        extract_ok = self.extract is None or not self.extract.failed
        build_ok = self.build is None or (self.build.published and not self.build.errors)
        tests_ok = not any(t.blocking for t in self.tests or [])
        return extract_ok and build_ok and tests_ok

    @property
    def test_outcomes(self) -> list[TestOutcome]:
        """Every data test this run ran, in a build or on its own."""
        return list(self.tests or []) + list(self.build.tests if self.build is not None else [])

    def summary(self) -> dict[str, object]:
        data: dict[str, object] = {"seconds": round(self.seconds, 3)}
        if self.extract is not None:
            data["extracted_tables"] = len(self.extract.results)
            data["extracted_rows"] = self.extract.rows
            data["extract_failed"] = [r.relation for r in self.extract.failed]
        if self.build is not None:
            data["built"] = len(self.build.built)
            data["kept"] = len(self.build.kept)
            data["loaded_rows"] = sum(self.build.rows.values())
            data["failed"] = self.build.with_status("failed")
            data["skipped"] = self.build.with_status("skipped")
            data["published"] = self.build.published
            if self.build.reason:
                data["not_published_because"] = self.build.reason
        tests = self.test_outcomes
        if tests:
            data["tests"] = {
                status: sum(t.status == status for t in tests) for status in sorted({t.status for t in tests})
            }
            data["tests_failed"] = [t.test.id for t in tests if t.status == "failed"]
            data["tests_warned"] = [t.test.id for t in tests if t.status == "warned"]
        return data


class _Run:
    """A command's run: its :class:`~conveyor.runctx.RunLifecycle`, and the :class:`Outcome` it fills in."""

    def __init__(
        self,
        project: Project,
        command: str,
        *,
        env: str | None,
        selection: Sequence[str],
        reporter: Reporter | None,
        jobs: int | None,
    ):
        from conveyor.runctx import RunLifecycle

        self.life = RunLifecycle(project, command, environment=env, selection=selection, reporter=reporter, jobs=jobs)
        self.ctx = self.life.ctx
        self.outcome = Outcome(self.ctx.run_id, command, lake=project.lake_location)

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        crash_point("run.before_finish")
        self.outcome.seconds = self.life.seconds
        summary = self.outcome.summary()
        if self.outcome.notes:
            summary["notes"] = list(self.outcome.notes)
        if isinstance(exc, KeyboardInterrupt):
            self.life.finish("cancelled", error=scrub(str(exc) or "cancelled by Ctrl-C (SIGINT)"), summary=summary)
        elif exc is not None:
            text = exc.render() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
            self.life.finish("failed", error=scrub(text), summary=summary)
        else:
            status = "succeeded" if self.outcome.ok else "failed"
            self.life.finish(status, error=_first_error(self.outcome), summary=summary)
        self.outcome.results = self.life.results
        self.outcome.results_path = None if self.life.results_path is None else str(self.life.results_path)
        self.life.__exit__(kind, exc, tb)


def _first_error(outcome: Outcome) -> str | None:
    failed = [t for t in outcome.tests or [] if t.blocking]
    if failed:
        return failed[0].describe()
    if outcome.extract and outcome.extract.failed:
        return outcome.extract.failed[0].error
    if outcome.build and outcome.build.errors:
        return next(iter(outcome.build.errors.values()))
    if outcome.build and outcome.build.reason:
        return outcome.build.reason
    return None


def plan_extract(
    project: Project, relations: Sequence[Relation], event: ExtractEvent | None = None, *, full: bool = False
) -> list[ExtractJob]:
    """The extract jobs for ``relations`` (narrowed by ``event``), each DSN and job type checked.

    Nothing is read or written: this is what ``--dry-run`` prints, and what a run starts from.
    """
    from conveyor.extract.extract import check_jobs

    jobs = plan_jobs(project, relations, event, full=full)
    check_jobs(project, jobs)
    return jobs


@dataclass
class Plan:
    """What a command would do (``--dry-run``): computed from the project and the warehouse's
    settings, without reading data or writing anything."""

    command: str
    extract: list[str] = field(default_factory=list)
    """Source relations whose upstream tables would be extracted, in order."""
    build: list[tuple[str, str]] = field(default_factory=list)
    """(kind, relation) that would be built, updated or unloaded, in order."""
    warehouse: str | None = None
    """The warehouse it would change, described (``DuckDB file warehouse.duckdb``)."""
    target: str | None = None
    """The lake source an ``unload`` would write, the schema an ``upgrade --into-schema`` would build in."""

    def to_dict(self) -> dict[str, object]:
        return {
            "command": self.command,
            "extract": self.extract,
            "build": [{"kind": kind, "relation": name} for kind, name in self.build],
            "warehouse": self.warehouse,
            "target": self.target,
        }


def plan(
    project: Project,
    command: str,
    selection: Sequence[str] = (),
    *,
    env: str | None = None,
    event: ExtractEvent | None = None,
    full: bool = False,
    source_name: str | None = None,
    only_selected: bool = False,
    into_schema: str | None = None,
) -> Plan:
    """What ``command`` (run, extract, load, update, upgrade or unload) would do for ``selection``.

    Bad input fails here as it would in the command (an unknown environment, an engine that
    cannot do the command, a DSN that does not resolve), before anything is read or written.
    """
    from conveyor.load.update import with_dependents

    if command not in ("run", "extract", "load", "update", "upgrade", "unload"):
        raise UserError(f'there is no plan for "{command}".' + did_you_mean(command, ["run", "extract", "load"]))
    if command == "extract":
        jobs = plan_extract(project, project.select(selection), event, full=full)
        return Plan(command, extract=[job.relation for job in jobs])
    warehouse = open_environment(project, env)
    operation = {"run": "load"}.get(command, command)
    warehouse.require(operation)  # an engine that cannot do it refuses here, as the command would
    chosen = project.select(selection)
    if command in ("run", "load"):
        relations = whole_schemas(project, chosen)
    elif command == "update" or (command == "upgrade" and not only_selected):
        relations = with_dependents(project, chosen)
    else:
        relations = chosen
    found = Plan(command, build=[(r.kind, r.name) for r in relations], warehouse=warehouse.describe())
    if command == "run":
        found.extract = [job.relation for job in plan_extract(project, relations)]
    if command == "unload":
        found.target = source_name or f"unload_{warehouse.name}"
    if command == "upgrade":
        found.target = into_schema
    return found


def extract_tables(
    project: Project,
    selection: Sequence[str] = (),
    *,
    event: ExtractEvent | None = None,
    full: bool = False,
    fail_fast: bool = False,
    jobs: int | None = None,
    reporter: Reporter | None = None,
) -> Outcome:
    """Extract the selected source tables into the lake."""
    from conveyor.extract.extract import extract

    chosen = project.select(selection)
    preflight(project, chosen, extract=True)  # bad input fails here, before anything is written
    jobs_list = plan_extract(project, chosen, event, full=full)
    with _Run(project, "extract", env=None, selection=selection, reporter=reporter, jobs=jobs) as run:
        run.outcome.extract = extract(run.ctx, jobs_list, fail_fast=fail_fast)
    return run.outcome


def load(
    project: Project,
    selection: Sequence[str] = (),
    *,
    env: str | None = None,
    jobs: int | None = None,
    reporter: Reporter | None = None,
    skip_copy: bool = False,
    resume: bool = False,
    continue_from: str | None = None,
    fail_fast: bool = False,
) -> Outcome:
    """Rebuild the schemas of the selection in a warehouse from the lake, then publish.

    Args:
        fail_fast: after the first failed relation, start no other (they are recorded as skipped).
        skip_copy: create every relation with no data (a compile check by the warehouse).
        resume: continue the last failed (or abandoned: its process died) load of this
            environment, rebuilding only what failed, was skipped or never finished.
        continue_from: continue the last failed load from this relation on (it and every
            relation after it in execution order are rebuilt).
    """
    from conveyor.extract.extract import extract
    from conveyor.extract.seeds import stale_seeds
    from conveyor.load.build import BuildOptions, build, check_kept_views, check_own_database, manifests_for
    from conveyor.load.resume import resume_point

    env_name = project.environment(env)[0]
    preflight(project, whole_schemas(project, project.select(selection)), environment=env_name, build=True)
    warehouse = open_environment(project, env)
    warehouse.require("load")  # an engine that cannot do it refuses before anything is written
    options = BuildOptions(skip_copy=skip_copy)
    note = None
    if resume or continue_from:
        selection, resumed, note = resume_point(project, warehouse, selection, continue_from, skip_copy)
        if resumed is None:
            return _nothing_to_resume(project, warehouse, selection, note, reporter)
        options = resumed
    options = dataclasses.replace(options, fail_fast=fail_fast)
    relations = whole_schemas(project, project.select(selection))
    todo = [r for r in relations if r.name not in options.done]
    check_own_database(project, todo, warehouse)  # bad input: fail before writing
    check_kept_views(project, relations, warehouse)
    seeds = [] if skip_copy else stale_seeds(project, todo)
    if not skip_copy:
        manifests_for(project, [r for r in todo if r not in seeds])  # a missing extract is bad input
    with _Run(project, "load", env=warehouse.name, selection=selection, reporter=reporter, jobs=jobs) as run:
        run.outcome.warehouse = warehouse.describe()
        if seeds:  # CSV files that changed since their extract: into the lake first, like any source data
            run.outcome.extract = extract(run.ctx, plan_extract(project, seeds), fail_fast=fail_fast)
            run.outcome.notes.append("extracted the seed(s) whose CSV changed: " + ", ".join(r.name for r in seeds))
        if note:
            run.outcome.notes.append(note)
        if options.changed:
            run.outcome.notes.append(
                f"changed since run {options.resume_from}, so built again with what depends on them: "
                + ", ".join(options.changed)
            )
        run.outcome.notes.extend(unparsed_notes(project, relations))
        run.outcome.build = build(run.ctx, relations, warehouse, options)
    return run.outcome


def update(
    project: Project,
    selection: Sequence[str] = (),
    *,
    env: str | None = None,
    reporter: Reporter | None = None,
    scheduled_start_time: datetime | None = None,
    wait_timeout: float = 3600.0,
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> Outcome:
    """Refresh the selection and its dependents in place, in one transaction.

    With ``scheduled_start_time``, first wait (up to ``wait_timeout`` seconds) until every
    selected source table has a successful extract that started after that time. A load or
    update of the same warehouse (DuckDB) or schemas (PostgreSQL) that is running is waited
    for, up to ``lock_timeout`` seconds.
    """
    from conveyor.load.build import check_own_database, manifests_for
    from conveyor.load.update import update as update_relations
    from conveyor.load.update import wait_for_extracts, with_dependents

    relations = with_dependents(project, project.select(selection))
    preflight(project, relations, environment=project.environment(env)[0], build=True)
    warehouse = open_environment(project, env)
    warehouse.require("update")  # an engine that cannot do it refuses before anything is written
    check_own_database(project, relations, warehouse)
    manifests_for(project, relations)  # a missing extract is bad input: fail before writing
    with _Run(project, "update", env=warehouse.name, selection=selection, reporter=reporter, jobs=1) as run:
        run.outcome.warehouse = warehouse.describe()
        if scheduled_start_time is not None:
            wait_for_extracts(run.ctx, relations, scheduled_start_time, wait_timeout)
        run.outcome.build = update_relations(run.ctx, relations, warehouse, lock_timeout_s=lock_timeout)
    return run.outcome


def upgrade(
    project: Project,
    selection: Sequence[str] = (),
    *,
    env: str | None = None,
    reporter: Reporter | None = None,
    only_selected: bool = False,
    into_schema: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> Outcome:
    """Drop and rebuild the selection (and, unless ``only_selected``, its dependents) in place.

    A running load or update of the same warehouse is waited for, up to ``lock_timeout`` seconds.
    """
    from conveyor.load.build import check_own_database, manifests_for
    from conveyor.load.update import with_dependents
    from conveyor.load.upgrade import target_names
    from conveyor.load.upgrade import upgrade as upgrade_relations

    chosen = project.select(selection)
    relations = chosen if only_selected else with_dependents(project, chosen)
    preflight(project, relations, environment=project.environment(env)[0], build=True)
    warehouse = open_environment(project, env)
    warehouse.require("upgrade")  # an engine that cannot do it refuses before anything is written
    if into_schema is not None and not IDENTIFIER.match(into_schema):
        raise UserError(f'--into-schema "{into_schema}" is not a valid schema name.')
    target_names(relations, into_schema)  # name clashes are bad input: fail before writing
    check_own_database(project, relations, warehouse)
    manifests_for(project, relations)
    with _Run(project, "upgrade", env=warehouse.name, selection=selection, reporter=reporter, jobs=1) as run:
        run.outcome.warehouse = warehouse.describe()
        run.outcome.build = upgrade_relations(run.ctx, relations, warehouse, into_schema, lock_timeout)
        if into_schema:
            run.outcome.notes.append(f"rebuilt into schema {into_schema}")
    return run.outcome


def unload(
    project: Project,
    selection: Sequence[str] = (),
    *,
    env: str | None = None,
    source_name: str | None = None,
    reporter: Reporter | None = None,
) -> Outcome:
    """Export published relations into the lake as Parquet plus manifest.

    They land under ``<lake>/data/<source_name>/<schema>.<table>/`` (``source_name``
    defaults to ``unload_<env>``), where another project reads them with a ``lake`` source.
    """
    from conveyor.lake.lake import Lake
    from conveyor.load.unload import unload as unload_relations

    warehouse = open_environment(project, env)
    warehouse.require("unload")  # an engine that cannot do it refuses before anything is written
    relations = project.select(selection)
    name = source_name or f"unload_{warehouse.name}"
    if not IDENTIFIER.match(name):
        raise UserError(f'"{name}" is not a valid source name: use letters, digits and underscores.')
    published = warehouse.relations()
    missing = [r.name for r in relations if r.name not in published]
    if missing:
        raise UserError(
            f"not published in {warehouse.describe()}: {', '.join(missing)}.", hint='Run "conveyor load" first.'
        )
    with _Run(project, "unload", env=warehouse.name, selection=selection, reporter=reporter, jobs=1) as run:
        run.outcome.warehouse = warehouse.describe()
        manifests = unload_relations(run.ctx, relations, warehouse, name)
        run.outcome.notes.append(
            f"unloaded {len(manifests)} relation(s), {sum(m.rows for m in manifests):,} rows, "
            f"to {Lake(project.lake_location).where}/{name}"
        )
    return run.outcome


def relation_ddl(project: Project, relation: Relation, warehouse: Warehouse) -> list[str]:
    """The statements that create a relation in a warehouse (for ``conveyor show ddl``)."""
    from conveyor.load.build import executable_sql
    from conveyor.warehouse import ddl
    from conveyor.warehouse.base import qualified

    design = relation.design
    typed = design.typed
    if relation.kind == "source" or (relation.kind == "ctas" and typed):
        return warehouse.table_ddl(design)
    sql = executable_sql(project, relation, None, frozenset(), warehouse.DIALECT)
    if relation.kind == "ctas":
        return warehouse.ctas_ddl(design, sql)
    return [f"CREATE VIEW {qualified(relation.name)} AS\n{sql}", *ddl.comments(design, view=True)]


def unparsed_notes(project: Project, relations: Sequence[Relation]) -> list[str]:
    """A note per relation whose SQL sqlglot cannot parse: it runs as written, its dependencies from depends_on."""
    return [
        f"{r.sql_path.relative_to(project.root)}: sqlglot cannot parse it ({r.unparsed}); it runs as written, "
        "with dependencies from depends_on only"
        for r in relations
        if r.unparsed is not None and r.sql_path is not None
    ]


def _nothing_to_resume(
    project: Project, warehouse: Warehouse, selection: Sequence[str], note: str, reporter: Reporter | None
) -> Outcome:
    """A load --resume of a load that published before it died: a run that builds nothing, with a note."""
    with _Run(project, "load", env=warehouse.name, selection=selection, reporter=reporter, jobs=1) as run:
        run.outcome.warehouse = warehouse.describe()
        run.outcome.notes.append(note)
    return run.outcome


def run(
    project: Project,
    selection: Sequence[str] = (),
    *,
    env: str | None = None,
    jobs: int | None = None,
    reporter: Reporter | None = None,
    fail_fast: bool = False,
) -> Outcome:
    """Extract, load, build and publish: the whole ETL for a selection.

    ``fail_fast``: after the first failed table or relation, start no other; a failed
    extract then builds nothing.
    """
    from conveyor.extract.extract import extract
    from conveyor.load.build import BuildOptions, build, check_own_database

    relations = whole_schemas(project, project.select(selection))
    preflight(project, relations, extract=True, environment=project.environment(env)[0], build=True)
    warehouse = open_environment(project, env)
    warehouse.require("load")  # an engine that cannot do it refuses before anything is written
    check_own_database(project, relations, warehouse)
    jobs_list = plan_extract(project, relations)
    with _Run(project, "run", env=warehouse.name, selection=selection, reporter=reporter, jobs=jobs) as run:
        run.outcome.warehouse = warehouse.describe()
        run.outcome.extract = extract(run.ctx, jobs_list, fail_fast=fail_fast)
        if run.outcome.extract.failed:
            if fail_fast:
                run.outcome.notes.append("--fail-fast: an extract failed, so nothing was built or published")
                return run.outcome
            run.outcome.notes.append("extract failed for some tables; the load uses their previous extracts")
        try:
            run.outcome.notes.extend(unparsed_notes(project, relations))
            run.outcome.build = build(run.ctx, relations, warehouse, BuildOptions(fail_fast=fail_fast))
        except LakeError as exc:
            # a table with no extract at all: nothing to load it from, so the run fails
            run.outcome.notes.append(exc.render())
    return run.outcome


def test(
    project: Project,
    selection: Sequence[str] = (),
    *,
    env: str | None = None,
    jobs: int | None = None,
    reporter: Reporter | None = None,
) -> Outcome:
    """Run the data tests of the selection against an environment's published warehouse.

    Tests of relations that are not published yet are skipped. ``row_count_change`` compares
    a build with what is published, so it is skipped here. Each outcome is recorded as a
    ``test`` event of the run (``conveyor runs show``) and returned in ``Outcome.tests``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from conveyor.quality.plan import tests_for
    from conveyor.quality.run import Tester, TestOutcome, record

    relations = project.select(selection)
    preflight(project, relations, environment=project.environment(env)[0])
    warehouse = open_environment(project, env)
    tests = tests_for(project, relations)
    published = warehouse.relations() if tests else {}
    tester = Tester(project, warehouse.DIALECT, warehouse.query)
    with _Run(project, "test", env=warehouse.name, selection=selection, reporter=reporter, jobs=jobs) as run:
        run.outcome.warehouse = warehouse.describe()
        run.ctx.reporter.phase(run.ctx.label("test"), len(tests))

        def one(test: DataTest) -> TestOutcome:
            missing = [name for name in test.reads if name not in published]
            if missing:
                outcome = TestOutcome(test, "skipped", message=f"{missing[0]} is not published in {warehouse.name}")
            else:
                outcome = tester.run(test)
            record(run.ctx, outcome)
            return outcome

        with ThreadPoolExecutor(max_workers=max(1, run.ctx.jobs), thread_name_prefix="test") as pool:
            run.outcome.tests = list(pool.map(one, tests))
    return run.outcome
