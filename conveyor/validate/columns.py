"""Compare the columns a query produces with the columns its design lists.

Two sources of "produced" columns: the query's explicit select list (no warehouse needed,
names only, compared case-insensitively) and what the warehouse reports for the compiled
statement (names exactly, in order, with types compared by :mod:`conveyor.validate.typecompat`).
A load compares names the same way (see ``output_select`` in the warehouses), so a
mismatch here is a load that would fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from conveyor.design.models import ColumnDesign
from conveyor.design.types import SqlType, parse_type
from conveyor.errors import Location
from conveyor.project import Project, Relation
from conveyor.validate.problems import Problem, problem
from conveyor.validate.typecompat import compare

#: what an engine's error names, first match wins: a column, a function or a table (alias)
_NAMED = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # DuckDB: 'Table "o" does not have a column named "x"'
        r'column named "([^"]+)"',
        # DuckDB: 'Referenced column "x" not found'; PostgreSQL: 'column "x" does not exist', 'column o.x ...'
        r'column "?([^"\s]+?)"?(?: \(.*?\))? (?:not found|does not exist)',
        # DuckDB: 'Scalar Function with name lenn does not exist', '... is not in the catalog'
        r'function with name "?([^"\s!]+?)"? (?:does not exist|is not in the catalog)',
        # PostgreSQL: 'function lenn(text) does not exist'
        r'function "?([^"\s(]+)"?\(.*?\) does not exist',
        # DuckDB: 'Referenced table "x" not found', 'Table with name x does not exist'
        r'referenced table "([^"]+)" not found',
        r'table with name "?([^"\s!]+?)"? does not exist',
        # PostgreSQL: 'missing FROM-clause entry for table "x"', 'relation "s.x" does not exist'
        r'FROM-clause entry for table "([^"]+)"',
        r'relation "([^"]+)" does not exist',
    )
)
#: DuckDB's context: "LINE 3:   lenn(name) AS l" and a caret line under the place it means
_CONTEXT = re.compile(r"^LINE (\d+): (.*)\n( *)\^", re.MULTILINE)


@dataclass(frozen=True)
class Produced:
    """One output column of a query: its name and, from a warehouse, its type."""

    name: str
    native: str | None = None
    """The type as the warehouse spells it (None: not known)."""
    type: SqlType | None = None
    """``native`` in the design vocabulary (None: not known, or no equivalent)."""


def locate(sql: str, word: str, dialect: str, line: int | None = None, after: int = 0) -> tuple[int, int] | None:
    """Line and column (1-based) of the first token ``word`` (a name, any case) in ``sql``.

    With ``line``, only tokens on that line count, the first at or after column ``after``
    preferred.
    """
    import sqlglot  # only when a problem is located: a warm validate does not import sqlglot
    from sqlglot.tokens import TokenType

    name_tokens = (TokenType.VAR, TokenType.IDENTIFIER)
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:  # a tokenizer failure: the position is a nicety, not needed
        return None
    wanted = word.lower()
    found: list[tuple[int, int]] = []
    for token in tokens:
        if token.token_type in name_tokens and token.text.lower() == wanted:
            width = token.end - token.start
            found.append((token.line, max(token.col - width, 1)))
    if line is not None:
        found = [place for place in found if place[0] == line]
        later = [place for place in found if place[1] >= after]
        found = later or found
    return found[0] if found else None


def named(text: str) -> str | None:
    """The column, function or table an engine's error message names (the last part of a dotted name)."""
    for pattern in _NAMED:
        match = pattern.search(text)
        if match:
            return match.group(1).split(".")[-1]
    return None


def context_position(text: str, sql: str, prefix: int = 0) -> tuple[int, int | None] | None:
    """Where DuckDB's ``LINE n:`` context and caret point, as (line, column) of ``sql``.

    Args:
        text: the error message.
        sql: the statement text, as executed after ``prefix`` characters on its first line.
        prefix: how many characters came before ``sql`` on the first line (e.g. ``EXPLAIN ``).
    """
    match = _CONTEXT.search(text)
    if not match:
        return None
    line, shown = int(match.group(1)), match.group(2)
    lines = sql.split("\n")
    if not 1 <= line <= len(lines):
        return None
    caret = len(match.group(3)) - len(f"LINE {line}: ")
    if shown.startswith("..."):
        # a long line is shown as a window of it: find the window in the real line
        body = shown[3:].removesuffix("...")
        full = " " * prefix + lines[0] if line == 1 else lines[line - 1]
        start = full.find(body)
        if start < 0:
            return line, None
        caret += start - 3
    column = caret - (prefix if line == 1 else 0)
    return line, max(column, 0) + 1


def locate_error(
    project: Project, relation: Relation, text: str, executed: str | None = None, prefix: int = 0
) -> Location | None:
    """Where in the relation's SQL file an engine's error points.

    Args:
        text: the error message.
        executed: the statement the engine ran, when it is the file's text as written (after
            ``prefix`` characters): DuckDB's ``LINE n:`` context then gives the line and column.
            Otherwise the first place the error's column, function or table is named is used.
    """
    if relation.sql_path is None or relation.sql is None:
        return None
    shown = str(relation.sql_path.relative_to(project.root))
    position = context_position(text, executed, prefix) if executed is not None else None
    name = named(text)
    if name:
        line, column = position or (None, None)
        found = locate(relation.sql, name, project.dialect, line, column or 0)
        if found:
            return Location(shown, *found)
    if position:
        return Location(shown, *position)
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
    partial = relation.design.partial_columns
    missing = [(i, c) for i, c in enumerate(design) if key(c.name) not in by_name]
    extra = [] if partial else [p for p in produced if key(p.name) not in set(wanted)]
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
            hint="Add it to the design's columns (in the same position), or drop it from the SELECT list "
            "(or set partial_columns: true to list only some columns).",
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
    if not partial and not missing and not extra and not twice and got != wanted:
        yield problem(
            "output-column-order",
            f'{source.capitalize()} of "{relation.name}" produces ({", ".join(p.name for p in produced)}), but the '
            f"design lists ({', '.join(c.name for c in design)}).",
            location=relation.location("columns"),
            hint="Put the design's columns in the order of the SELECT list (or reorder the SELECT list).",
            relation=relation.name,
            check=check,
        )
    yield from _types(relation, design, by_name, key, check)


def _types(
    relation: Relation,
    design: Sequence[ColumnDesign],
    by_name: dict[str, Produced],
    key: Callable[[str], str],
    check: str,
) -> Iterator[Problem]:
    for index, column in enumerate(design):
        found = by_name.get(key(column.name))
        if found is None or column.type is None or found.native is None:
            continue
        wanted = _parsed(column.type)
        if found.type is None:
            yield problem(
                "output-column-unknown-type",
                f'column "{column.name}" of "{relation.name}" comes out as {found.native}, which validate cannot '
                f"compare with the design's {wanted}.",
                location=relation.location("columns", index, "type"),
                relation=relation.name,
                check=check,
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
                check=check,
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
                check=check,
                details={"column": column.name, "produced": found.native, "design": str(wanted)},
            )


_parsed = lru_cache(maxsize=4096)(parse_type)
"""Design types, parsed once each (SqlType is immutable)."""


def _shown(project: Project, relation: Relation) -> str:
    path = relation.sql_path or relation.doc.path
    try:
        return str(path.relative_to(project.root))
    except ValueError:
        return str(path)
