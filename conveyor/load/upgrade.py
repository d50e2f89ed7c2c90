"""upgrade: drop and rebuild relations in place, for development.

Unlike ``load`` it does not build a new warehouse: each relation is dropped and created
again where it is (or, with ``into_schema``, in a sandbox schema), one statement at a time.
It is quick for trying a change to one transformation and what depends on it; it is not
atomic, so it is not for production.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.errors import ConveyorError, LakeError, LoadError, UserError
from conveyor.lake.lake import Lake
from conveyor.load.build import BuildResult, binding_schemas, executable_sql
from conveyor.load.update import LOCK_TIMEOUT_S, open_transaction
from conveyor.project import Relation
from conveyor.runctx import RunContext
from conveyor.warehouse.base import Transaction, Warehouse


def target_names(relations: Sequence[Relation], into_schema: str | None) -> dict[str, str]:
    """Where each relation is rebuilt: in place, or ``<into_schema>.<table>``."""
    if into_schema is None:
        return {r.name: r.name for r in relations}
    targets: dict[str, str] = {}
    for relation in relations:
        target = f"{into_schema}.{relation.table}"
        clash = next((name for name, t in targets.items() if t == target), None)
        if clash:
            raise UserError(
                f'"{clash}" and "{relation.name}" would both become "{target}" with --into-schema.',
                hint="Upgrade them separately, or choose relations whose table names differ.",
            )
        targets[relation.name] = target
    return targets


def upgrade(
    ctx: RunContext,
    relations: Sequence[Relation],
    warehouse: Warehouse,
    into_schema: str | None = None,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> BuildResult:
    """Rebuild ``relations`` in DAG order; a failure skips what depends on it.

    A running load or update of the same warehouse is waited for (at most ``lock_timeout_s`` seconds).
    """
    targets = target_names(relations, into_schema)
    ctx.reporter.phase("upgrade", len(relations))
    lake = Lake(ctx.project.lake_location)
    tx = open_transaction(ctx, warehouse, list(targets.values()), atomic=False, lock_timeout_s=lock_timeout_s)
    result = BuildResult()
    try:
        for schema in sorted({t.split(".")[0] for t in targets.values()}):
            tx.ensure_schema(schema)
        for relation in relations:
            blocked = [d for d in relation.dependencies if result.status.get(d) in ("failed", "skipped")]
            if blocked:
                result.status[relation.name] = "skipped"
                ctx.skipped(relation.name, "upgrade", f"upstream relation {blocked[0]} failed")
                continue
            _one(ctx, tx, lake, warehouse, relation, targets, result)
        tx.publish()
        result.published = True
    except BaseException:
        tx.abort()
        raise
    if any(s != "succeeded" for s in result.status.values()):
        result.reason = "some relations failed; the others were upgraded"
    return result


def _one(
    ctx: RunContext,
    tx: Transaction,
    lake: Lake,
    warehouse: Warehouse,
    relation: Relation,
    targets: dict[str, str],
    result: BuildResult,
) -> None:
    design = relation.design.model_copy(update={"name": targets[relation.name]})
    try:
        with ctx.step(relation.name, "upgrade") as outcome:
            tx.drop(design.name)
            if relation.kind == "source":
                assert relation.source is not None
                ctx.reading([relation])
                chain = lake.require_chain(relation.source, relation.name, legacy=ctx.project.lake_table(relation))
                outcome.rows = tx.load_chain(design, chain)
            else:
                sql = executable_sql(ctx.project, relation, targets.__getitem__, set(targets), warehouse.DIALECT)
                with tx.binding(binding_schemas(ctx.project, relation)):
                    if relation.kind == "ctas":
                        outcome.rows = tx.create_table(design, sql)
                    else:
                        tx.create_view(design, sql)
        if relation.kind != "view":
            with ctx.step(relation.name, "check"):
                violations = tx.check(design)
                if violations:
                    raise LoadError("; ".join(v.describe() for v in violations) + ".")
        result.status[relation.name] = "succeeded"
        if outcome.rows is not None:
            result.rows[relation.name] = outcome.rows
    except (ConveyorError, LakeError) as exc:
        result.status[relation.name] = "failed"
        result.errors[relation.name] = exc.render()
