"""Checks of data tests (docs/tests.md): what they name exists, their values fit, their SQL parses.

Each problem points at the test in its design (file:line) or at the custom assertion's file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation

from conveyor.design.tests import TestEntry
from conveyor.design.types import SqlType
from conveyor.errors import Location, did_you_mean
from conveyor.project import Project, Relation
from conveyor.quality.plan import read_assertions
from conveyor.validate.problems import Problem, problem
from conveyor.warehouse.base import Build

Say = Callable[..., Problem]

_NUMERIC = {"smallint", "integer", "bigint", "ubigint", "decimal", "real", "double"}
_TEXTUAL = {"text", "varchar", "char", "uuid"}


def data_tests(project: Project, relation: Relation) -> Iterator[Problem]:
    """The generic tests of one design."""
    known = _columns(relation)
    for index, column in enumerate(relation.design.columns):
        for number, entry in enumerate(column.tests):
            loc = ("columns", index, "tests", number, entry.kind)
            yield from _entry(project, relation, entry, loc, column.name, known)
    for number, entry in enumerate(relation.design.tests):
        yield from _entry(project, relation, entry, ("tests", number, entry.kind), None, known)


def _columns(relation: Relation) -> list[str] | None:
    """The relation's columns when they are known without a warehouse (None: not known)."""
    design = relation.design
    if design.columns and not design.partial_columns:
        return [c.name for c in design.loaded_columns]
    if relation.select_names is not None:
        return list(relation.select_names)
    return None


def _entry(
    project: Project,
    relation: Relation,
    entry: TestEntry,
    loc: tuple[str | int, ...],
    column: str | None,
    known: list[str] | None,
) -> Iterator[Problem]:
    args = entry.args

    def say(code: str, message: str, hint: str | None = None) -> Problem:
        # the line is looked up only for a problem: a cached design re-reads its YAML for it
        return problem(code, message, location=relation.location(*loc), hint=hint, relation=relation.name)

    name = f'the {entry.kind} test of "{relation.name}"'
    given = getattr(args, "column", None)
    if column is not None and entry.kind in ("row_count", "row_count_change"):
        yield say("test-misplaced", f"{name} counts rows, so it belongs in the relation's tests, not a column's.",
                  "Move it to the design's top-level tests: list.")  # fmt: skip
        return
    if column is not None and given is not None and given != column:
        yield say("test-misplaced", f'{name} is in the tests of column "{column}" but names column "{given}".',
                  "Remove column: (a column's tests test that column), or move it to the relation's.")  # fmt: skip
    target = column or given
    expression = getattr(args, "expression", None)
    needs_target = entry.kind in ("not_null", "accepted_values", "relationships") or (
        entry.kind == "unique" and not getattr(args, "columns", None)
    )
    if needs_target and column is None and not given and not expression:
        yield say("test-misplaced", f"{name} names no column.",
                  "Give column: NAME (or expression: SQL), or move the test into that column's tests.")  # fmt: skip
    names = [target] if target and not expression else []
    names += list(getattr(args, "columns", None) or [])
    for wanted in names:
        if known is not None and wanted not in known:
            yield say("test-unknown-column", f'{name} names column "{wanted}", which "{relation.name}" does not have.'
                      + did_you_mean(wanted, known), "Fix the name, or test a column the relation has.")  # fmt: skip
    for label, sql in (("where", args.where), ("expression", expression), ("predicate", getattr(args, "sql", None))):
        if sql and not _parses(sql, project.dialect):
            yield say("test-bad-sql", f"the {label} of {name} is not a SQL expression: {sql}",
                      "Write one SQL expression in the warehouse's dialect, e.g. amount >= 0.")  # fmt: skip
    if entry.relationships is not None:
        yield from _relationship(project, entry, say, name)
    if entry.accepted_values is not None and target and not expression:
        sql_type = _type(relation, target)
        wrong = [v for v in entry.accepted_values.values if sql_type is not None and not _fits(v, sql_type)]
        if wrong:
            yield say("test-values-type", f'{name} lists {", ".join(repr(v) for v in wrong)}, which '
                      f'{"is" if len(wrong) == 1 else "are"} not {sql_type} like column "{target}".',
                      "List values of the column's type (quote text values in YAML: \"1\").")  # fmt: skip
    if entry.row_count is not None:
        low, high = entry.row_count.min, entry.row_count.max
        if low is None and high is None:
            yield say("test-bounds", f"{name} has neither min nor max.", "Give min:, max: or both.")
        elif low is not None and high is not None and low > high:
            yield say("test-bounds", f"{name} has min {low} above max {high}.", "Swap them.")
    if entry.row_count_change is not None and not (
        entry.row_count_change.max_drop or entry.row_count_change.max_growth
    ):
        yield say("test-bounds", f"{name} has neither max_drop nor max_growth.", 'Give max_drop: "20%" or the like.')


def _relationship(project: Project, entry: TestEntry, say: Say, name: str) -> Iterator[Problem]:
    assert entry.relationships is not None
    to, field = entry.relationships.to, entry.relationships.field
    other = project.relations.get(to)
    if other is None:
        yield say("test-unknown-relation", f'{name} refers to "{to}", which is not a relation of the project.'
                  + did_you_mean(to, project.relations), 'Name a relation as "schema.table".')  # fmt: skip
        return
    fields = _columns(other)
    if fields is not None and field not in fields:
        yield say("test-unknown-column", f'{name} refers to column "{field}" of "{to}", which it does not have.'
                  + did_you_mean(field, fields), "Fix the field: name.")  # fmt: skip


def _type(relation: Relation, column: str) -> SqlType | None:
    for c in relation.design.columns:
        if c.name == column and c.type:
            return c.sql_type
    return None


def _fits(value: object, sql_type: SqlType) -> bool:
    """Whether a YAML scalar can be a value of the column's type (NULL is never an accepted value)."""
    if sql_type.is_array:
        return True
    if sql_type.name == "boolean":
        return isinstance(value, bool)
    if sql_type.name in _NUMERIC:
        if isinstance(value, bool):
            return False
        try:
            Decimal(str(value))
        except InvalidOperation:
            return False
        return True
    if sql_type.name in _TEXTUAL:
        return isinstance(value, str)
    return True  # dates, times, json: written as text in YAML, compared by the warehouse


def _parses(sql: str, dialect: str) -> bool:
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        sqlglot.parse_one(sql, dialect=dialect)
    except SqlglotError:
        return False
    return True


def assertions(project: Project, relations: Sequence[Relation]) -> Iterator[Problem]:
    """Custom assertions (tests/*.sql) parse, and read relations of the project."""
    for assertion in read_assertions(project):
        if assertion.problem is not None:
            yield problem(
                assertion.problem.code or "test-assertion-parse",
                assertion.problem.message,
                location=assertion.problem.location,
                hint=assertion.problem.hint,
            )
        elif not assertion.reads:
            shown = str(assertion.path.relative_to(project.root))
            yield problem(
                "test-assertion-reads-nothing",
                f'the custom assertion "{assertion.name}" reads no relation of the project, so no build runs it.',
                location=Location(shown),
                hint="Name the relations it checks as schema.table.",
            )


def compile_tests(
    project: Project, build: Build, relations: Sequence[Relation], rebuilt: set[str], broken: set[str]
) -> list[Problem]:
    """Run each data test's query on the empty scratch build: the warehouse compiles it (``--with-warehouse``).

    Tests of relations that did not compile, or that read one, are left out (their problem is
    reported already). Row counts are not queries worth compiling.
    """
    from conveyor.errors import ConveyorError
    from conveyor.quality.plan import tests_for
    from conveyor.quality.sql import failing_rows, with_count

    def name_of(name: str) -> str:
        return build.staged(name) if name in rebuilt else name

    found = []
    dialect = project.dialect
    for test in tests_for(project, relations):
        if test.kind in ("row_count", "row_count_change") or any(read in broken for read in test.reads):
            continue
        try:
            build.fetch(with_count(failing_rows(test, project, name_of, dialect), 1), 1)
        except ConveyorError as exc:
            found.append(
                problem(
                    "test-compile-failed",
                    f'the test "{test.name}" of "{test.relation}" does not compile: {exc.message}',
                    location=test.location,
                    hint="Fix its column, expression or where (or the custom assertion's SQL).",
                    relation=test.relation,
                    check="warehouse",
                )
            )
    return found
