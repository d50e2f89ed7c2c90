"""``--with-warehouse``: build the selection empty in a throwaway warehouse, so the real engine compiles it.

The selection and everything upstream of it are built in execution order, as a load with
``--skip-copy`` would: source tables from their designs' DDL, CTAS and views from their
queries (rewritten exactly as a load rewrites them, with ``LIMIT 0`` for CTAS), by the
compiler of :mod:`conveyor.validate.compiler`. The build is never published: it is
abandoned and the scratch warehouse removed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from conveyor.errors import ConveyorError
from conveyor.graph.splice import limit_zero
from conveyor.load.build import binding_schemas, empty_select, executable_sql
from conveyor.project import Project, Relation
from conveyor.validate.columns import locate_error
from conveyor.validate.compiler import Compiler, Rejected, Target, Wording, needed
from conveyor.validate.datatests import compile_tests
from conveyor.validate.problems import Problem, from_error, problem
from conveyor.validate.scratch import Scratch, scratch_warehouse, summary
from conveyor.warehouse.base import Build


def check_warehouse(project: Project, relations: Sequence[Relation], environment: str) -> list[Problem]:
    """Compile ``relations`` (and what they read) in a scratch copy of ``environment``; return the problems."""
    try:
        name, config = project.environment(environment)
    except ConveyorError as exc:
        return [
            problem(
                "unknown-environment",
                exc.message,
                hint=exc.hint,
                location=project.settings_doc.location(("environments",)),
            )
        ]
    try:
        dsn = project.environment_dsn(name)
    except ConveyorError as exc:
        return [from_error(exc, check="warehouse")]
    selected = {r.name for r in relations}
    order = [project.relations[n] for n in project.dag.order(needed(project, relations))]
    try:
        with scratch_warehouse(name, config, dsn) as scratch:
            build = scratch.warehouse.begin(sorted({r.schema for r in order}), run_id=f"validate{secrets.token_hex(4)}")
            try:
                target = WarehouseTarget(project, scratch, build, {r.name for r in order})
                found = Compiler(project, target, selected).run(order)
                broken = {p.relation for p in found if p.severity == "error" and p.relation}
                return found + compile_tests(project, build, relations, target.rebuilt, broken)
            finally:
                build.abort()
    except ConveyorError as exc:
        return [problem("warehouse-unavailable", summary(exc.message), hint=exc.hint)]


class WarehouseTarget(Target):
    """A scratch build of the environment's own engine (see :mod:`conveyor.validate.scratch`)."""

    wording = Wording("warehouse", "compile-failed", "not-compiled", "compiled", "the scratch warehouse", exact=True)

    def __init__(self, project: Project, scratch: Scratch, build: Build, rebuilt: set[str]):
        self.project, self.scratch, self.build, self.rebuilt = project, scratch, build, rebuilt
        self.dialect = scratch.warehouse.DIALECT
        self.sql: dict[str, str] = {}

    def source(self, relation: Relation) -> None:
        design = relation.design.model_copy(update={"columns": relation.design.loaded_columns})
        try:
            self.build.create_table(design, empty_select(relation, self.dialect))
        except ConveyorError as exc:
            raise Rejected(exc.message) from None

    def describe(self, relation: Relation) -> list[tuple[str, str]]:
        sql = executable_sql(self.project, relation, self.build.staged, self.rebuilt, self.dialect)
        self.sql[relation.name] = sql
        try:
            with self.build.binding(binding_schemas(self.project, relation)):
                return self.scratch.describe(self.build, relation.design, sql)
        except ConveyorError as exc:
            raise self._rejected(relation, exc) from None

    def create(self, relation: Relation) -> None:
        """Create it as a load would (its columns match, so the engine's own column check passes)."""
        sql = self.sql[relation.name]
        try:
            with self.build.binding(binding_schemas(self.project, relation)):
                if relation.kind == "view":
                    self.build.create_view(relation.design, sql)
                else:
                    self.build.create_table(relation.design, limit_zero(sql, self.dialect))
        except ConveyorError as exc:
            raise self._rejected(relation, exc) from None

    def stand_in(self, relation: Relation) -> bool:
        try:
            self.build.drop(relation.name)
            self.build.create_table(relation.design, empty_select(relation, self.dialect))
        except ConveyorError:
            return False
        return True

    def _rejected(self, relation: Relation, exc: ConveyorError) -> Rejected:
        text = summary(exc.message.partition(" failed in ")[2].partition(": ")[2] or exc.message)
        return Rejected(text, locate_error(self.project, relation, exc.message))
