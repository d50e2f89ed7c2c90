"""``--with-warehouse``: build the selection empty in a throwaway warehouse, so the real engine compiles it.

The selection and everything upstream of it are built in execution order, as a load with
``--skip-copy`` would: source tables from their designs' DDL, CTAS and views from their
queries (rewritten exactly as a load rewrites them, with ``LIMIT 0`` for CTAS). Before a
CTAS or view is created, the warehouse describes its query's output, which is compared with
the design's columns (names, order, types: :mod:`conveyor.validate.columns`).

A relation that does not compile, or whose output does not match its design, is replaced
by a stand-in built from its design (when the design has typed columns), so the relations
downstream of it are still compiled against what the design promises. Without a stand-in
they are not compiled (an ``info`` note says why). Only problems of selected relations are
reported. The build is never published: it is abandoned and the scratch warehouse removed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError, Location
from conveyor.graph.splice import limit_zero
from conveyor.load.build import binding_schemas, empty_select, executable_sql
from conveyor.project import Project, Relation
from conveyor.validate.columns import Produced, compare_columns, locate_error
from conveyor.validate.problems import Problem, from_error, problem
from conveyor.validate.scratch import Scratch, scratch_warehouse, summary
from conveyor.validate.typecompat import native_type
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
    needed = set(selected)
    for relation in relations:
        needed |= project.dag.upstream(relation.name)
    order = [project.relations[n] for n in project.dag.order(needed)]
    try:
        with scratch_warehouse(name, config, dsn) as scratch:
            build = scratch.warehouse.begin(sorted({r.schema for r in order}), run_id=f"validate{secrets.token_hex(4)}")
            try:
                return _Compiler(project, scratch, build, selected, needed).run(order)
            finally:
                build.abort()
    except ConveyorError as exc:
        return [problem("warehouse-unavailable", summary(exc.message), hint=exc.hint)]


class _Compiler:
    """Builds relations one by one into a scratch build, collecting problems of selected relations."""

    def __init__(self, project: Project, scratch: Scratch, build: Build, selected: set[str], rebuilt: set[str]):
        self.project, self.scratch, self.build = project, scratch, build
        self.selected, self.rebuilt = selected, rebuilt
        self.dialect = scratch.warehouse.DIALECT
        self.missing: dict[str, str] = {}
        """Relations that exist in no form in the scratch build, with the reason."""
        self.problems: list[Problem] = []

    def run(self, order: Sequence[Relation]) -> list[Problem]:
        for relation in order:
            try:
                self._one(relation)
            except Exception as exc:  # an engine's surprise is this relation's problem, not the whole run's
                self.missing[relation.name] = "compiling it failed"
                text = scrub(exc.message if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}")
                self._report(relation, self._failed(relation, text, relation.location("name")))
        return self.problems

    def _report(self, relation: Relation, found: Problem) -> None:
        if relation.name in self.selected:
            self.problems.append(found)

    def _skip(self, relation: Relation, why: str) -> None:
        self.missing[relation.name] = why
        self._report(
            relation,
            problem(
                "not-compiled",
                f'"{relation.name}" was not compiled: {why}.',
                location=relation.location("name"),
                relation=relation.name,
            ),
        )

    def _one(self, relation: Relation) -> None:
        blocked = [d for d in relation.sql_dependencies if d in self.missing]
        if blocked:
            self._skip(relation, f"it reads {blocked[0]}, which is not in the scratch warehouse")
            return
        if relation.external:
            self._skip(relation, f"it reads {relation.external[0]}, which is outside the project")
            return
        if relation.kind == "source":
            self._source(relation)
        elif relation.references is None:
            self.missing[relation.name] = "its SQL does not parse"  # reported as sql-parse
        else:
            self._query(relation)

    def _typed(self, relation: Relation) -> bool:
        columns = relation.design.loaded_columns
        return bool(columns) and all(c.type for c in columns)

    def _source(self, relation: Relation) -> None:
        if not self._typed(relation):
            self.missing[relation.name] = "a column has no type"  # reported by the design checks
            return
        design = relation.design.model_copy(update={"columns": relation.design.loaded_columns})
        try:
            self.build.create_table(design, empty_select(relation, self.dialect))
        except ConveyorError as exc:
            self.missing[relation.name] = "its table cannot be created"
            self._report(relation, self._failed(relation, exc.message, relation.location("columns")))

    def _query(self, relation: Relation) -> None:
        with self.build.binding(binding_schemas(self.project, relation)):
            self._bound_query(relation)

    def _bound_query(self, relation: Relation) -> None:
        sql = executable_sql(self.project, relation, self.build.staged, self.rebuilt, self.dialect)
        try:
            described = self.scratch.describe(self.build, relation.design, sql)
        except ConveyorError as exc:
            where = locate_error(self.project, relation, exc.message)
            self._report(relation, self._failed(relation, exc.message, where))
            self._stand_in(relation, "it does not compile")
            return
        produced = [Produced(n, t, native_type(t, self.dialect)) for n, t in described]
        found = list(compare_columns(self.project, relation, produced, exact=True, check="warehouse"))
        found += self._key_columns(relation, [p.name for p in produced])
        for item in found:
            self._report(relation, item)
        if any(item.severity == "error" for item in found):
            self._stand_in(relation, "its columns do not match its design")
            return
        self._create(relation, sql)

    def _key_columns(self, relation: Relation, names: list[str]) -> list[Problem]:
        """Constraints of a relation without design columns name columns its query produces."""
        if relation.design.columns or relation.select_names is not None:
            return []  # checked against the design or the select list already
        from conveyor.validate.designs import column_uses

        return [
            problem(
                "unknown-column",
                f'the {use.what} of "{relation.name}" names column "{use.column}", which the query does not produce.',
                location=relation.location(*use.loc),
                hint=f"It produces: {', '.join(names)}.",
                relation=relation.name,
                check="warehouse",
            )
            for use in column_uses(relation)
            if use.column not in names
        ]

    def _create(self, relation: Relation, sql: str) -> None:
        """Create it as a load would (its columns match, so the engine's own column check passes)."""
        try:
            if relation.kind == "view":
                self.build.create_view(relation.design, sql)
            else:
                self.build.create_table(relation.design, limit_zero(sql, self.dialect))
        except ConveyorError as exc:
            where = locate_error(self.project, relation, exc.message)
            self._report(relation, self._failed(relation, exc.message, where))
            self._stand_in(relation, "it does not compile")

    def _stand_in(self, relation: Relation, why: str) -> None:
        """An empty table with the design's columns, for the relations downstream; else they are skipped."""
        if relation.kind != "view" and self._typed(relation):
            try:
                self.build.drop(relation.name)
                self.build.create_table(relation.design, empty_select(relation, self.dialect))
                return
            except ConveyorError:
                pass
        self.missing[relation.name] = why

    def _failed(self, relation: Relation, message: str, where: Location | None) -> Problem:
        text = summary(message.partition(" failed in ")[2].partition(": ")[2] or message)
        return problem(
            "compile-failed",
            f'the warehouse rejects "{relation.name}": {text}',
            location=where,
            hint="Fix the query (or the design) so that a load can build it.",
            relation=relation.name,
        )
