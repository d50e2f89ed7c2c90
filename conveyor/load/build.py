"""Load and build: source tables from the lake, then CTAS and views in dependency order.

Everything goes into a :class:`~conveyor.warehouse.base.Build` (staging), in parallel across
independent relations. A relation that fails marks everything downstream of it skipped.
Constraints are checked before publishing. Then the build is published atomically, or, if
a required relation failed (or any failed and ``publish_on_failure`` is off), abandoned so
the previous warehouse stays exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence, Set
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

from conveyor import cancel
from conveyor.config.secrets import scrub
from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.errors import ConveyorError, DependencyError, LoadError, Location
from conveyor.faults import crash_point
from conveyor.graph.refs import SqlParseError, TableRef, is_own_catalog, resolve
from conveyor.graph.selection import select
from conveyor.lake.lake import Lake
from conveyor.lake.manifest import Manifest
from conveyor.project import Project, Relation, own_catalogs
from conveyor.quality.plan import DataTest, tests_for
from conveyor.quality.run import Tester, TestEvents, TestOutcome, run_tests
from conveyor.quality.run import record as record_test
from conveyor.quality.schedule import TestSchedule, published_counts
from conveyor.runctx import RunContext, StepOutcome
from conveyor.warehouse import render_type
from conveyor.warehouse.base import Build, Warehouse, quote

RESUME_STEP = "resume"
"""The step of the event (relation ``*``) a resumed load records, naming the build it continues."""


def record_resume(ctx: RunContext, build_id: str) -> None:
    """Record that this run continues the kept build of run ``build_id`` (see load/resume.py)."""
    now = datetime.now(UTC)
    ctx.tracking.record_event(
        ctx.run_id, "*", RESUME_STEP, "succeeded", started_at=now, finished_at=now, detail={"build": build_id}
    )


@dataclass
class BuildResult:
    """The outcome of one build: status, rows and error per relation."""

    status: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    published: bool = False
    reason: str | None = None
    manifests: dict[str, list[Manifest]] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    """Relations a resumed build had finished already: not rebuilt, published with the rest."""
    tests: list[TestOutcome] = field(default_factory=list)
    """The data tests run on the build, in the order they finished."""

    def with_status(self, status: str) -> list[str]:
        return [name for name, s in self.status.items() if s == status]

    @property
    def built(self) -> list[str]:
        """The relations this run built (not those it kept from the build it resumed)."""
        kept = set(self.kept)
        return [name for name in self.with_status("succeeded") if name not in kept]


def manifests_for(project: Project, relations: list[Relation]) -> dict[str, list[Manifest]]:
    """What each source relation loads from: its newest full extract plus later increments.

    A table with no committed extract is a user error naming the command to run.
    """
    lake = Lake(project.lake_location)
    found = {}
    for relation in relations:
        if relation.kind == "source":
            assert relation.source is not None
            found[relation.name] = lake.require_chain(
                relation.source, relation.name, legacy=project.lake_table(relation)
            )
    return found


def executable_sql(
    project: Project,
    relation: Relation,
    staged: Callable[[str], str] | None,
    rebuilt: Set[str],
    dialect: str,
) -> str:
    """The relation's query as the user wrote it, with only the names changed that binding requires.

    Each name of a project relation is spliced into the text as the quoted ``"schema"."table"``
    it is read from during this build (its staging name when this build rebuilds it), unless
    it is written that way already: views bind names when they are read, against the
    reader's search path, and a database part (``db.schema.table``) cannot name the build's
    file or staging schema. Every other byte stays as written. SQL sqlglot cannot parse runs
    unchanged; run it inside ``Build.binding(binding_schemas(...))`` so the warehouse's
    search path binds its names.
    """
    from conveyor.graph.splice import splice_tables, statement_text  # sqlglot, when a build runs
    from conveyor.graph.sqldeps import parse_sql

    assert relation.sql is not None
    if relation.unparsed is not None:
        return statement_text(relation.sql, dialect)
    try:
        tree = parse_sql(relation.sql, dialect)
    except SqlParseError:
        return statement_text(relation.sql, dialect)  # parsed in the default environment's dialect only
    mapping = {dep: staged(dep) if staged and dep in rebuilt else dep for dep in relation.dependencies}
    spliced = splice_tables(
        relation.sql,
        tree,
        mapping,
        own_schema=relation.schema,
        search_path=project.settings.defaults.search_path,
        known=set(project.relations),
        catalogs=project.catalogs,
    )
    return statement_text(spliced, dialect)


def binding_schemas(project: Project, relation: Relation) -> list[str]:
    """Where unqualified names of a relation's query are looked up: its own schema, then ``search_path``."""
    return list(dict.fromkeys([relation.schema, *project.settings.defaults.search_path]))


def fingerprint(relation: Relation) -> str:
    """Identifies what a relation is built from: kind, design, SQL text and the relations it reads.

    Recorded with each load and build step, so ``load --resume`` can tell what changed since.
    """
    data = {
        "kind": relation.kind,
        "design": relation.design.model_dump(mode="json"),
        "sql": relation.sql,
        "dependencies": sorted(relation.dependencies),
    }
    return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=16).hexdigest()


def check_own_database(project: Project, relations: Sequence[Relation], warehouse: Warehouse) -> None:
    """Refuse names qualified with the target warehouse's database that the project took for external.

    The dependency graph is built with the default environment's database name (the only
    one known when the project loads). A query naming the target's own database otherwise
    would read the published relation, not the one this build makes.
    """
    environment = EnvironmentConfig.model_construct(type=warehouse.ENGINE, dsn=warehouse.dsn)
    target = own_catalogs(environment)
    for relation in relations:
        for ref in relation.references or []:
            if (
                ref.catalog is None
                or not is_own_catalog(ref.catalog, target)
                or is_own_catalog(ref.catalog, project.catalogs)
            ):
                continue
            plain = TableRef(ref.schema, ref.name)
            name = resolve(plain, relation.schema, project.settings.defaults.search_path, set(project.relations))
            if name in project.relations:
                raise _foreign_own_database(project, relation, ref, name)


def check_kept_views(project: Project, relations: Sequence[Relation], warehouse: Warehouse) -> None:
    """Refuse reading a rebuilt relation through a kept view where the build would see its old rows.

    PostgreSQL binds a view to the relations it read when it was created: during a build a
    kept view still reads the published relations, not their staging copies. (DuckDB binds
    views when they are read, in the build's own file, so it is not affected.)
    """
    if warehouse.PUBLISH != "schema_swap":
        return
    rebuilt = {r.name for r in relations}
    for relation in relations:
        for dep in relation.dependencies:
            stale = _read_through_views(project, dep, rebuilt)
            if stale:
                schema = dep.partition(".")[0]
                raise DependencyError(
                    f'"{relation.name}" reads "{dep}", a view of a schema this load keeps, which reads "{stale[0]}", '
                    "which this load rebuilds: during the build the view still shows the published rows.",
                    location=relation.location("name"),
                    hint=f'Load schema "{schema}" too (e.g. conveyor load {relation.schema} {schema}).',
                    code="dependency",
                )


def _read_through_views(project: Project, name: str, rebuilt: set[str]) -> list[str]:
    """The rebuilt relations a kept view ``name`` reads, directly or through other kept views."""
    found: list[str] = []
    todo, seen = [name], set()
    while todo:
        current = todo.pop()
        relation = project.relations.get(current)
        if current in seen or current in rebuilt or relation is None or relation.kind != "view":
            continue
        seen.add(current)
        for dep in relation.dependencies:
            if dep in rebuilt:
                found.append(dep)
            else:
                todo.append(dep)
    return sorted(set(found))


def _foreign_own_database(project: Project, relation: Relation, ref: TableRef, name: str) -> DependencyError:
    assert relation.sql_path is not None
    default = project.settings.environment_name(None)
    known = " or ".join(f'"{c}"' for c in sorted(project.catalogs)) or "unknown (its dsn holds it in a variable)"
    return DependencyError(
        f'"{relation.name}" reads "{ref.catalog}.{name}": "{ref.catalog}" is the database of the warehouse '
        f'being built, but dependencies are found with the database of the default environment "{default}", '
        f"which is {known}; so it was taken for a table outside the project.",
        location=Location(str(relation.sql_path.relative_to(project.root)), ref.line, ref.column),
        hint="Write the name without the database part, or load with the default environment.",
        code="external-dependency",
    )


@dataclass(frozen=True)
class BuildOptions:
    """How a build runs.

    Attributes:
        skip_copy: create every relation with no data (a dry run of the build): source
            tables from their DDL, CTAS from their query with ``LIMIT 0``; the warehouse still
            compiles every statement.
        resume_from: the run id of a failed build whose staging is continued.
        done: relations that build already finished; they are not rebuilt.
        changed: relations that build finished whose SQL, design or dependencies changed since;
            they and what depends on them are rebuilt (not in ``done``).
        pinned: extracts to load instead of the newest ones (a pipeline loads its secondary
            environment from exactly the extracts its primary loaded).
        required: selection terms that must succeed, besides the project's ``required``.
        fail_fast: after the first failure, start no other relation (those running finish);
            the ones not started are recorded as skipped.
    """

    skip_copy: bool = False
    resume_from: str | None = None
    done: frozenset[str] = frozenset()
    changed: tuple[str, ...] = ()
    pinned: Mapping[str, list[Manifest]] | None = None
    required: tuple[str, ...] = ()
    fail_fast: bool = False


def has_checks(design: TableDesign) -> bool:
    """Whether a built table has constraints to check (keys, or not-null columns)."""
    keys = design.constraints
    return bool(keys.primary_key or keys.unique or keys.natural_key) or any(c.not_null for c in design.columns)


def empty_select(relation: Relation, dialect: str) -> str:
    """A query with the design's columns and types that returns no rows."""
    design = relation.design
    columns = ", ".join(
        f"CAST(NULL AS {render_type(c.sql_type, dialect, column=c.name, design=design.name)}) AS {quote(c.name)}"
        for c in design.loaded_columns
    )
    return f"SELECT {columns} WHERE 1 = 0"


def build(
    ctx: RunContext, relations: list[Relation], warehouse: Warehouse, options: BuildOptions | None = None
) -> BuildResult:
    """Build ``relations`` (whole schemas) into staging, check, and publish or keep it for a resume."""
    options = options or BuildOptions()
    project = ctx.project
    todo = [r for r in relations if r.name not in options.done]
    check_own_database(project, todo, warehouse)
    check_kept_views(project, relations, warehouse)
    if not options.skip_copy:
        ctx.reading(todo)  # before the chains are listed: retention must not remove what they name
    manifests = {} if options.skip_copy else dict(options.pinned or manifests_for(project, todo))
    schemas = sorted({r.schema for r in relations})
    tests = tests_for(project, todo)
    published = published_counts(warehouse, tests) if not options.skip_copy else {}
    ctx.reporter.phase(ctx.label("build"), len(todo))
    if options.resume_from:
        record_resume(ctx, options.resume_from)  # first: a resume that dies in turn is resumed the same way
    staging = warehouse.begin(schemas, run_id=ctx.run_id, resume_from=options.resume_from)
    result = BuildResult(
        status=dict.fromkeys(options.done, "succeeded"), manifests=manifests, kept=sorted(options.done)
    )
    try:
        rebuilt = {r.name for r in relations}
        sql = {r.name: _statement(project, r, staging, rebuilt, warehouse.DIALECT, options) for r in todo}
        tester = Tester(
            project, warehouse.DIALECT, staging.fetch,
            name_of=lambda name: staging.staged(name) if name in rebuilt else name,
            published=None if options.skip_copy else published,
            skip_volume=options.skip_copy, batch=True,
        )  # fmt: skip
        schedule = TestSchedule(project, tests, {r.name for r in todo})
        runner = _Runner(
            ctx, staging, manifests, sql, result, replace=options.resume_from is not None, tests=schedule, tester=tester
        )
        runner.fail_fast = options.fail_fast
        runner.run(todo)
        _decide(ctx, relations, result, options.required)
        if result.reason is None:
            with ctx.step("*", "publish"):
                staging.publish()
            result.published = True
        else:
            staging.suspend()
    except BaseException:
        staging.abort()
        raise
    return result


def _statement(
    project: Project, relation: Relation, staging: Build, rebuilt: set[str], dialect: str, options: BuildOptions
) -> str:
    """The SELECT that fills a relation (an empty one with --skip-copy)."""
    if relation.kind == "source":
        return empty_select(relation, dialect) if options.skip_copy else ""
    sql = executable_sql(project, relation, staging.staged, rebuilt, dialect)
    if options.skip_copy and relation.kind == "ctas":
        from conveyor.graph.splice import limit_zero

        return limit_zero(sql, dialect)
    return sql


def _decide(ctx: RunContext, relations: list[Relation], result: BuildResult, extra: Sequence[str] = ()) -> None:
    """Set ``result.reason`` when the build must not be published."""
    failed = [n for n in result.status if result.status[n] in ("failed", "skipped", "cancelled")]
    if not failed:
        return
    settings = ctx.project.settings
    terms = [*settings.required, *extra]
    required = set(select(ctx.project.dag, terms)) if terms else set()
    broken_required = sorted(set(failed) & required & {r.name for r in relations})
    if broken_required:
        result.reason = f"required relation(s) failed: {', '.join(broken_required)}"
    elif not settings.defaults.publish_on_failure:
        result.reason = f"{len(failed)} relation(s) failed or were skipped and publish_on_failure is off"


class _Runner:
    """Runs a build's relations over a thread pool in DAG order."""

    def __init__(
        self,
        ctx: RunContext,
        staging: Build,
        manifests: dict[str, list[Manifest]],
        sql: dict[str, str],
        result: BuildResult,
        *,
        replace: bool = False,
        tests: TestSchedule | None = None,
        tester: Tester | None = None,
    ):
        self.ctx, self.staging, self.manifests, self.sql, self.result = ctx, staging, manifests, sql, result
        self.replace = replace
        self.tests = tests or TestSchedule(ctx.project, [], set())
        self.tester = tester or Tester(ctx.project, "duckdb", staging.fetch)
        self.test_events = TestEvents(ctx)
        self.fail_fast = False
        self.lock = threading.Lock()

    def run(self, relations: list[Relation]) -> None:
        try:
            self._run(relations)
        finally:  # the test events not written yet, before the build is published or abandoned
            self.test_events.flush()

    def _run(self, relations: list[Relation]) -> None:
        by_name = {r.name: r for r in relations}
        scheduler = self.ctx.project.dag.scheduler(by_name)
        workers = max(1, self.ctx.jobs)
        stopped = False  # --fail-fast after a failure: what has not started does not start
        # relations are handed to the pool only when a worker is free, so a failure can still
        # stop the ones that are ready but not started
        pending: deque[str] = deque()
        checks: deque[str] = deque()  # relations built whose waiting tests can run now
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build") as pool:
            running: dict[Future[None], tuple[str, str]] = {}
            while True:
                pending.extend(scheduler.ready())
                while checks and len(running) < workers:
                    name = checks.popleft()
                    running[pool.submit(self._waiting_tests, name)] = (name, "tests")
                while pending and (stopped or len(running) < workers):
                    name = pending.popleft()
                    if stopped:
                        for skipped in [name, *sorted(scheduler.failed(name))]:
                            self.result.status[skipped] = "skipped"
                            self.ctx.skipped(skipped, "build", "not started: --fail-fast after a failure")
                        continue
                    running[pool.submit(self._one, by_name[name])] = (name, "build")
                if not running:  # (pending is empty here: a free worker took it, or a stop skipped it)
                    stuck = [] if checks else self.tests.release_stuck()
                    for name in stuck:  # tests waiting on each other's relations: they run at the end
                        scheduler.done(name)
                    if stuck or checks:
                        continue
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name, _kind = running.pop(future)
                    if future.exception() is not None:  # a bug: the relation fails, the build goes on
                        error = future.exception()
                        with self.lock:
                            self.result.status[name] = "failed"
                            self.result.errors[name] = scrub(f"{type(error).__name__}: {error}")
                    if self.result.status[name] == "succeeded" and self.tests.waiting(name):
                        continue  # its dependents wait for the tests that read relations still building
                    if self.result.status[name] == "succeeded":
                        scheduler.done(name)
                    else:
                        stopped = stopped or self.fail_fast
                        for skipped in sorted(scheduler.failed(name)):
                            self.result.status[skipped] = "skipped"
                            self.ctx.skipped(skipped, "build", f"upstream relation {name} failed")
                checks.extend(self.tests.ready(self.result.status, exclude=[n for n, _ in running.values()]))
        self._late_tests()

    def _waiting_tests(self, name: str) -> None:
        """Run the tests of ``name`` that waited for other relations to be built."""
        self._tests(name, self.tests.take_waiting(name))

    def _late_tests(self) -> None:
        """Tests that read what depends on the relation they cover: run once everything is built."""
        for name, tests in self.tests.take_late().items():
            if self.result.status.get(name) == "succeeded":
                self._tests(name, tests)

    def _tests(self, name: str, tests: list[DataTest]) -> None:
        """Run tests of one relation; a failed ``error`` test fails it (tests of other relations skip)."""
        runnable = []
        for test in tests:
            broken = [read for read in test.reads[1:] if self.result.status.get(read, "succeeded") != "succeeded"]
            if broken:
                skipped = TestOutcome(test, "skipped", message=f"{broken[0]} was not built")
                record_test(self.ctx, skipped)
                with self.lock:
                    self.result.tests.append(skipped)
            else:
                runnable.append(test)
        outcomes = run_tests(self.ctx, self.tester, runnable, self.test_events)
        failed = [o for o in outcomes if o.blocking]
        with self.lock:
            self.result.tests.extend(outcomes)
        if failed:
            with self.lock:
                self.result.status[name] = "failed"
                self.result.errors[name] = "; ".join(o.describe() for o in failed)
            self._discard(name)

    def _discard(self, name: str) -> None:
        """Take a relation whose checks or tests failed out of staging: if the build is published
        anyway (``publish_on_failure``), the data that broke them is not. (A relation something
        was built on already stays: only tests that run late can find it so.)"""
        with suppress(ConveyorError):
            self.staging.drop(name)

    def _one(self, relation: Relation) -> None:
        step = "load" if relation.kind == "source" else "build"
        if cancel.requested():  # started after Ctrl-C or SIGTERM: nothing new runs
            with self.lock:
                self.result.status[relation.name] = "cancelled"
            return
        try:
            with self.ctx.step(relation.name, step) as outcome:
                outcome.detail["fingerprint"] = fingerprint(relation)
                try:
                    outcome.rows = self._create(relation, outcome)
                except ConveyorError as exc:
                    if exc.location is None and relation.sql_path is not None:
                        exc.location = Location(str(relation.sql_path.relative_to(self.ctx.project.root)))
                    raise
            if relation.kind != "view" and has_checks(relation.design):
                with self.ctx.step(relation.name, "check"):
                    self._check(relation)
            status, error = "succeeded", None
            crash_point("build.relation.after")
        except Exception as exc:  # any failure is this relation's failure; the others go on
            text = exc.render() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
            status, error = "failed", scrub(text)
            self._discard(relation.name)
        with self.lock:
            self.result.status[relation.name] = status
            if error:
                self.result.errors[relation.name] = error
        if status == "succeeded":
            self._tests(relation.name, self.tests.take_now(relation.name, self.result.status))

    def _create(self, relation: Relation, outcome: StepOutcome) -> int | None:
        if self.replace:
            self.staging.drop(relation.name)  # a leftover of the build being resumed
        if relation.kind == "source" and relation.name not in self.manifests:
            rows = self.staging.create_table(relation.design, self.sql[relation.name])
        elif relation.kind == "source":
            chain = self.manifests[relation.name]
            rows = self.staging.load_chain(relation.design, chain)
            outcome.detail["extracts"] = [m.extract_id for m in chain]
        elif relation.kind == "ctas":
            with self.staging.binding(binding_schemas(self.ctx.project, relation)):
                rows = self.staging.create_table(relation.design, self.sql[relation.name])
        else:
            with self.staging.binding(binding_schemas(self.ctx.project, relation)):
                self.staging.create_view(relation.design, self.sql[relation.name])
            return None
        with self.lock:
            self.result.rows[relation.name] = rows
        return rows

    def _check(self, relation: Relation) -> None:
        violations = self.staging.check(relation.design)
        if violations:
            where = relation.location("constraints")
            raise LoadError("; ".join(v.describe() for v in violations) + ".", location=where)
