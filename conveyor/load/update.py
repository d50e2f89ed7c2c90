"""update: refresh the selection and its dependents in place, in one transaction.

The daytime refresh. Source tables take their newest extracts. A table whose
previous load is known and whose extracts are incremental gets only the new increments,
merged by primary key; any other table has its rows replaced. CTAS relations downstream
are recomputed and views recreated, in dependency order. It all happens in one warehouse
transaction, so any failure rolls everything back and readers never see a partial update.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime

from conveyor.errors import ConveyorError, LoadError, RunFailed
from conveyor.lake.lake import Lake
from conveyor.lake.manifest import Manifest
from conveyor.load import LOCK_TIMEOUT_S
from conveyor.load.build import BuildResult, binding_schemas, executable_sql
from conveyor.project import Project, Relation
from conveyor.quality.plan import DataTest, tests_for
from conveyor.quality.run import Tester, run_tests
from conveyor.quality.schedule import published_counts
from conveyor.runctx import RunContext
from conveyor.warehouse.base import Transaction, Warehouse


def with_dependents(project: Project, relations: Sequence[Relation]) -> list[Relation]:
    """The relations and everything downstream of them, in execution order."""
    names = {r.name for r in relations}
    for relation in relations:
        names |= project.dag.downstream(relation.name)
    return [project.relations[n] for n in project.dag.order(names)]


def wait_for_extracts(ctx: RunContext, relations: Sequence[Relation], after: datetime, timeout_s: float) -> None:
    """Wait until every source table has a successful extract that started after ``after``.

    This is how a scheduled update waits for the extract that was meant to run before it.
    Running out of time fails the run and names the tables still waiting.
    """
    wanted = {(r.source, r.name): r.name for r in relations if r.kind == "source"}
    deadline = time.monotonic() + timeout_s
    while True:
        done: dict[tuple[str | None, str], datetime | None] = {
            (s.source, s.table_name): s.last_success_at for s in ctx.tracking.extract_state()
        }
        waiting = sorted(name for key, name in wanted.items() if not _after(done.get(key), after))
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise RunFailed(
                f"no successful extract after {after.isoformat()} for: {', '.join(waiting)} "
                f"(waited {timeout_s:.0f} s).",
                hint="Check the extract's run with conveyor runs, or raise --wait-timeout.",
            )
        ctx.reporter.message(f"waiting for extracts of: {', '.join(waiting)}")
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))


def _after(moment: datetime | None, after: datetime) -> bool:
    return moment is not None and moment > after


def update(
    ctx: RunContext,
    relations: Sequence[Relation],
    warehouse: Warehouse,
    pinned: Mapping[str, list[Manifest]] | None = None,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> BuildResult:
    """Apply ``relations`` (already closed over their dependents) to the published warehouse.

    ``pinned`` gives source relations the extract chains to apply instead of the newest ones (a
    pipeline updates its secondary environment from exactly what its primary got); the chains
    applied are in ``result.manifests``. A load or update of the same warehouse that is running
    is waited for (at most ``lock_timeout_s`` seconds): a load publishing after this update
    committed would throw the update away.
    """
    ctx.reporter.phase(ctx.label("update"), len(relations))
    lake = Lake(ctx.project.lake_location)
    result = BuildResult()
    tests = tests_for(ctx.project, relations)
    published = published_counts(warehouse, tests)  # before the transaction changes them
    tx = open_transaction(ctx, warehouse, [r.name for r in relations], atomic=True, lock_timeout_s=lock_timeout_s)
    tester = Tester(ctx.project, warehouse.DIALECT, tx.fetch, published=published)
    updating = {r.name for r in relations}
    waiting: list[DataTest] = []  # tests that read relations updated later
    current: str | None = None
    try:
        for relation in relations:
            current = relation.name
            _apply(ctx, tx, lake, warehouse, relation, result, pinned or {})
            done = set(result.status) | {relation.name}
            ready = [t for t in tests if t.relation == relation.name]
            waiting += [t for t in ready if any(r in updating and r not in done for r in t.reads[1:])]
            _gate(ctx, tester, [t for t in ready if t not in waiting], result)
            result.status[relation.name] = "succeeded"
        for test in waiting:
            current = test.relation
            _gate(ctx, tester, [test], result)
        with ctx.step("*", "commit"):
            tx.publish()
        result.published = True
    except Exception as exc:  # one failure rolls everything back
        tx.abort()
        _record_rollback(ctx, relations, current, exc, result)
    return result


def _gate(ctx: RunContext, tester: Tester, tests: Sequence[DataTest], result: BuildResult) -> None:
    """Run data tests inside the update; a failed ``error`` test rolls the whole update back."""
    outcomes = run_tests(ctx, tester, tests)
    result.tests.extend(outcomes)
    failed = [outcome for outcome in outcomes if outcome.blocking]
    if failed:
        raise LoadError("; ".join(outcome.describe() for outcome in failed))


def open_transaction(
    ctx: RunContext, warehouse: Warehouse, names: Sequence[str], *, atomic: bool, lock_timeout_s: float
) -> Transaction:
    """Open the warehouse for in-place changes of ``names`` and take every lock they need, waiting visibly."""
    tx = warehouse.transaction(
        run_id=ctx.run_id, atomic=atomic, lock_timeout_s=lock_timeout_s, waiting=ctx.reporter.message
    )
    try:
        tx.lock(names)
    except BaseException:
        tx.abort()
        raise
    return tx


def _apply(
    ctx: RunContext,
    tx: Transaction,
    lake: Lake,
    warehouse: Warehouse,
    relation: Relation,
    result: BuildResult,
    pinned: Mapping[str, list[Manifest]],
) -> None:
    design = relation.design
    with ctx.step(relation.name, "update") as outcome:
        if relation.kind == "source":
            assert relation.source is not None
            ctx.reading([relation])
            chain = pinned.get(relation.name) or lake.require_chain(
                relation.source, relation.name, legacy=ctx.project.lake_table(relation)
            )
            result.manifests[relation.name] = chain
            outcome.rows = _apply_extracts(ctx, tx, warehouse.name, relation, chain)
            outcome.detail["extracts"] = [m.extract_id for m in chain]
        else:
            sql = executable_sql(ctx.project, relation, None, frozenset(), warehouse.DIALECT)
            with tx.binding(binding_schemas(ctx.project, relation)):
                if relation.kind == "ctas":
                    outcome.rows = tx.refresh(design, sql)
                else:
                    tx.create_view(design, sql)
        if outcome.rows is not None:
            result.rows[relation.name] = outcome.rows
    if relation.kind != "view":
        with ctx.step(relation.name, "check"):
            violations = tx.check(design)
            if violations:
                raise LoadError(
                    "; ".join(v.describe() for v in violations) + ".", location=relation.location("constraints")
                )


def _apply_extracts(ctx: RunContext, tx: Transaction, env: str, relation: Relation, chain: list[Manifest]) -> int:
    """Merge only the increments the warehouse has not seen, or replace all rows."""
    applied = set(last_applied(ctx, env, relation.name))
    has_key = bool(relation.design.constraints.primary_key)
    if has_key and chain[0].extract_id in applied:
        return sum(tx.merge_table(relation.design, m) for m in chain[1:] if m.extract_id not in applied)
    return tx.replace_rows(relation.design, chain)


def last_applied(ctx: RunContext, env: str, relation: str) -> list[str]:
    """The extract ids the last successful load or update of ``relation`` in ``env`` applied."""
    for run in ctx.tracking.list_runs(limit=200, status="succeeded"):
        if run.environment != env or run.command not in ("load", "run", "update"):
            continue
        for event in ctx.tracking.run_events(run.run_id):
            if event.relation == relation and event.step in ("load", "update") and event.status == "succeeded":
                return list((event.detail or {}).get("extracts", []))
    return []


def _record_rollback(
    ctx: RunContext, relations: Sequence[Relation], failed: str | None, exc: Exception, result: BuildResult
) -> None:
    text = exc.render() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
    for relation in relations:
        if relation.name == failed:
            result.status[relation.name] = "failed"
            result.errors[relation.name] = text
        elif relation.name not in result.status:
            result.status[relation.name] = "skipped"
            ctx.skipped(relation.name, "update", f"rolled back after {failed} failed")
        else:
            result.status[relation.name] = "rolled back"
    result.reason = f"{failed} failed, so the whole update was rolled back; the warehouse is unchanged"
