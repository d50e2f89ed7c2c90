"""Compare the columns a query produces with the columns its design lists.

Two sources of "produced" columns: the query's explicit select list (no warehouse needed,
names only, compared case-insensitively) and what the warehouse reports for the compiled
statement (names exactly, in order, with types compared by :mod:`conveyor.validate.typecompat`).
A load compares names the same way (see ``_check_columns`` in the warehouses), so a
mismatch here is a load that would fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot.tokens import TokenType

from conveyor.design.models import ColumnDesign
from conveyor.design.types import SqlType, parse_type
from conveyor.errors import Location
from conveyor.project import Project, Relation
from conveyor.validate.problems import Problem, problem
from conveyor.validate.typecompat import compare

_NAME_TOKENS = (TokenType.VAR, TokenType.IDENTIFIER)
# 'column "x" does not exist', 'column o.x does not exist' (PostgreSQL), 'Referenced column "x" not found',
# 'Table "o" does not have a column named "x"' (DuckDB)
_MISSING_COLUMN = re.compile(
    r'column named "([^"]+)"|column "?([^"\s]+?)"?(?: \(.*?\))? (?:not found|does not exist)', re.IGNORECASE
)


@dataclass(frozen=True)
class Produced:
    """One output column of a query: its name and, from a warehouse, its type."""

    name: str
    native: str | None = None
    """The type as the warehouse spells it (None: not known)."""
    type: SqlType | None = None
    """``native`` in the design vocabulary (None: not known, or no equivalent)."""


def locate(sql: str, word: str, dialect: str) -> tuple[int, int] | None:
    """Line and column (1-based) of the first token ``word`` (a name, any case) in ``sql``."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:  # a tokenizer failure: the position is a nicety, not needed
        return None
    wanted = word.lower()
    for token in tokens:
        if token.token_type in _NAME_TOKENS and token.text.lower() == wanted:
            width = token.end - token.start
            return token.line, max(token.col - width, 1)
    return None


def locate_error(project: Project, relation: Relation, text: str) -> Location | None:
    """Where in the relation's SQL file a warehouse error points, when it names a column."""
    if relation.sql_path is None or relation.sql is None:
        return None
    shown = str(relation.sql_path.relative_to(project.root))
    match = _MISSING_COLUMN.search(text)
    if match:
        name = match.group(1) or match.group(2)
        found = locate(relation.sql, name.split(".")[-1], project.dialect)
        if found:
            return Location(shown, *found)
    return Location(shown)


def static_columns(project: Project, relation: Relation) -> Iterator[Problem]:
    """Compare an explicit select list with the design's columns (names only)."""
    if relation.kind == "source" or not relation.design.columns or relation.select_names is None:
        return
    produced = [Produced(name) for name in relation.select_names]
    yield from compare_columns(project, relation, produced, exact=False, check="sql")


def compare_columns(
    project: Project, relation: Relation, produced: Sequence[Produced], *, exact: bool, check: str
) -> Iterator[Problem]:
    """Names, order and (when known) types of ``produced`` against the design's columns.

    Args:
        exact: compare names exactly (a warehouse's output); otherwise ignore case (a select
            list read without knowing how the warehouse folds unquoted names).
        check: the check to report the problems under.
    """
    design = relation.design.columns
    if not design:
        return

    def key(name: str) -> str:
        return name if exact else name.lower()

    wanted = [key(c.name) for c in design]
    got = [key(p.name) for p in produced]
    by_name = {key(p.name): p for p in produced}
    source = "the query" if exact else "the query's select list"
    missing = [(i, c) for i, c in enumerate(design) if key(c.name) not in by_name]
    extra = [p for p in produced if key(p.name) not in set(wanted)]
    for index, column in missing:
        near = [p.name for p in extra if p.name.lower() == column.name.lower()]
        also = f' (it produces "{near[0]}", which differs in case)' if near else ""
        yield problem(
            "output-column-missing",
            f'the design of "{relation.name}" lists column "{column.name}", but {source} does not produce it{also}.',
            location=relation.location("columns", index),
            hint="Add it to the SELECT list (or alias an expression to that name), or remove it from the design.",
            relation=relation.name,
            check=check,
        )
    for output in extra:
        place = locate(relation.sql or "", output.name, project.dialect)
        where = Location(_shown(project, relation), *(place or (None, None)))
        yield problem(
            "output-column-extra",
            f'{source.capitalize()} of "{relation.name}" produces column "{output.name}", which the design does not '
            "list.",
            location=where,
            hint="Add it to the design's columns (in the same position), or drop it from the SELECT list.",
            relation=relation.name,
            check=check,
        )
    twice = sorted({p.name for p in produced if got.count(key(p.name)) > 1})
    for name in twice:
        place = locate(relation.sql or "", name, project.dialect)
        yield problem(
            "output-column-duplicate",
            f'{source.capitalize()} of "{relation.name}" produces column "{name}" more than once.',
            location=Location(_shown(project, relation), *(place or (None, None))),
            hint="Give each output column its own name (alias one of them).",
            relation=relation.name,
            check=check,
        )
    if not missing and not extra and not twice and got != wanted:
        yield problem(
            "output-column-order",
            f'{source.capitalize()} of "{relation.name}" produces ({", ".join(p.name for p in produced)}), but the '
            f"design lists ({', '.join(c.name for c in design)}).",
            location=relation.location("columns"),
            hint="Put the design's columns in the order of the SELECT list (or reorder the SELECT list).",
            relation=relation.name,
            check=check,
        )
    yield from _types(relation, design, by_name, key)


def _types(
    relation: Relation, design: Sequence[ColumnDesign], by_name: dict[str, Produced], key: Callable[[str], str]
) -> Iterator[Problem]:
    for index, column in enumerate(design):
        found = by_name.get(key(column.name))
        if found is None or column.type is None or found.native is None:
            continue
        wanted = parse_type(column.type)
        if found.type is None:
            yield problem(
                "output-column-unknown-type",
                f'column "{column.name}" of "{relation.name}" comes out as {found.native}, which validate cannot '
                f"compare with the design's {wanted}.",
                location=relation.location("columns", index, "type"),
                relation=relation.name,
            )
            continue
        verdict = compare(found.type, wanted)
        if verdict == "mismatch":
            yield problem(
                "output-column-type",
                f'column "{column.name}" of "{relation.name}" comes out as {found.native}, but the design says '
                f"{wanted}.",
                location=relation.location("columns", index, "type"),
                hint=f"Cast it in the SELECT list (CAST(... AS {wanted.render('postgres')})), "
                "or fix the design's type.",
                relation=relation.name,
                details={"column": column.name, "produced": found.native, "design": str(wanted)},
            )
        elif verdict == "narrowing":
            yield problem(
                "output-column-narrowing",
                f'column "{column.name}" of "{relation.name}" comes out as {found.native}, which may not fit the '
                f"design's {wanted}.",
                location=relation.location("columns", index, "type"),
                hint="Widen the design's type, or cast in the SELECT list if every value fits.",
                relation=relation.name,
                details={"column": column.name, "produced": found.native, "design": str(wanted)},
            )


def _shown(project: Project, relation: Relation) -> str:
    path = relation.sql_path or relation.doc.path
    try:
        return str(path.relative_to(project.root))
    except ValueError:
        return str(path)
