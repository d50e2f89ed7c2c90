"""Run the SQL the user wrote: edit only the table names a build must point elsewhere.

A build sometimes has to read a relation under another name than the query gives it:
PostgreSQL builds into ``<schema>$staging``, a name qualified with the warehouse's own
database must lose that part (the build file or staging schema is not that database), and
an unqualified name must be bound to the relation the dependency graph chose. Printing the
parsed tree again with sqlglot would do that, but it also rewrites everything else
(``date_part('week', ...)`` becomes ``EXTRACT``, lambdas and ``list()`` change, comments
move). So the edits are spliced into the original text at the positions sqlglot recorded
for each name: every other byte stays as the user wrote it.

The helpers at the end make a query safe to embed in a larger statement (``CREATE TABLE x
AS ...``, ``SELECT * FROM (...) LIMIT 0``): a query may end in a ``;`` or a ``--`` comment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from conveyor.graph.sqldeps import SqlParseError, TableRef, _norm, _real_tables, _table_ref, resolve

__all__ = ["limit_zero", "splice_tables", "statement_text", "subquery"]

_TRAILING_SEMICOLON = re.compile(r";\s*\Z")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _qualified(name: str) -> str:
    schema, _, table = name.partition(".")
    return f"{_quote(schema)}.{_quote(table)}"


@dataclass(frozen=True)
class _Replaced:
    """What happened to one spliced table reference, to fix the columns that name it."""

    key: str
    target: str
    had_alias: bool
    aliased: bool
    renamed: bool


def splice_tables(
    sql: str,
    tree: exp.Expr,
    mapping: Mapping[str, str],
    *,
    own_schema: str,
    search_path: Sequence[str] = (),
    known: Set[str] = frozenset(),
    catalogs: Set[str] = frozenset(),
) -> str:
    """Point some table references of ``sql`` elsewhere, changing nothing else in the text.

    Each real table whose resolved ``"schema.table"`` is a key of ``mapping`` is written as
    the quoted ``"schema"."table"`` of its value, unless it is written that way already.
    Columns qualified as ``schema.table.column`` (or with a catalog) that name a spliced
    table get the new schema. When the table name itself changes, a table without alias
    gets its old name as alias, so ``orders.id`` keeps working.

    Args:
        sql: the query text ``tree`` was parsed from.
        tree: ``parse_sql(sql)``; it is not modified.
        mapping: resolved name to the name to read, both ``"schema.table"``.
        own_schema: as for ``resolve``.
        search_path: as for ``resolve``.
        known: as for ``resolve``.
        catalogs: as for ``resolve`` (the warehouse's own database names).

    Returns:
        The query text with only those names changed.

    Raises:
        SqlParseError: a name to change has no recorded position (never for ``parse_sql`` trees).
    """
    edits: list[tuple[int, int, str]] = []
    replaced: dict[int, _Replaced] = {}
    for table in _real_tables(tree):
        key = resolve(_table_ref(table), own_schema, search_path, known, catalogs)
        if key is None or key not in mapping or _written_as(table, mapping[key]):
            continue
        target = mapping[key]
        start, end = _span(table, ("catalog", "db", "this"))
        text = _qualified(target)
        renamed = _norm(table.this) != target.partition(".")[2]
        aliased = renamed and not table.alias and not _binding_conflict(table)
        if aliased:
            name_start, name_end = _span(table, ("this",))
            text += " AS " + sql[name_start:name_end]
        edits.append((start, end, text))
        replaced[id(table)] = _Replaced(key, target, bool(table.alias), aliased, renamed)
    if replaced:
        edits += _column_edits(tree, replaced, own_schema, search_path, known, catalogs)
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql


def _written_as(table: exp.Table, target: str) -> bool:
    """Whether the reference names ``target`` as ``schema.table`` already (no database part)."""
    schema, _, name = target.partition(".")
    db = table.args.get("db")
    return table.args.get("catalog") is None and db is not None and _norm(db) == schema and _norm(table.this) == name


def _span(node: exp.Expr, parts: Sequence[str]) -> tuple[int, int]:
    """Start and end (exclusive) in the text of the named parts of a table or column, first to last."""
    present = [node.args[p] for p in parts if node.args.get(p) is not None]
    metas = [p.meta if isinstance(p, exp.Identifier) else {} for p in present]
    if not present or any(m.get("start") is None or m.get("end") is None for m in metas):
        raise SqlParseError(f'cannot locate "{node.sql()}" in the SQL text to point it at the relation being built')
    return metas[0]["start"], metas[-1]["end"] + 1


def _column_edits(
    tree: exp.Expr,
    replaced: dict[int, _Replaced],
    own_schema: str,
    search_path: Sequence[str],
    known: Set[str],
    catalogs: Set[str],
) -> list[tuple[int, int, str]]:
    """Edits of ``schema.table.column`` qualifiers whose table was spliced."""
    edits: list[tuple[int, int, str]] = []
    for column in tree.find_all(exp.Column):
        db, table_part = column.args.get("db"), column.args.get("table")
        if db is None or table_part is None:
            continue
        catalog = column.args.get("catalog")
        ref = TableRef(_norm(db), _norm(table_part), None if catalog is None else _norm(catalog))
        key = resolve(ref, own_schema, search_path, known, catalogs)
        bound = _bound_table(column, key, replaced) if key is not None else None
        if bound is None:
            continue
        entry = replaced[id(bound)]
        start, _ = _span(column, ("catalog", "db"))
        table_start, table_end = _span(column, ("table",))
        if entry.aliased:
            # the table now carries its old name as alias: qualify by that alone
            edits.append((start, table_start, ""))
        elif entry.renamed:
            edits.append((start, table_end, _qualified(entry.target)))
        else:
            edits.append((start, table_start, _quote(entry.target.partition(".")[0]) + "."))
    return edits


def _binding_conflict(table: exp.Table) -> bool:
    """Tell whether another table in the same FROM is bound to the same name.

    ``FROM sales.orders, crm.orders`` is valid SQL; aliasing both ``orders`` is not.
    """
    select = table.find_ancestor(exp.Select)
    if select is None:
        return False
    name = _norm(table.this)
    return any(other is not table and _binding_name(other) == name for other in _from_tables(select))


def _from_tables(select: exp.Select) -> list[exp.Table]:
    sources = [select.args.get("from_"), *(select.args.get("joins") or [])]
    return [s.this for s in sources if s is not None and isinstance(s.this, exp.Table)]


def _binding_name(table: exp.Table) -> str:
    alias = table.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.this is not None:
        return _norm(alias.this)
    return _norm(table.this)


def _bound_table(column: exp.Column, key: str, replaced: dict[int, _Replaced]) -> exp.Table | None:
    """The spliced table a qualified column belongs to, searching outwards like SQL does.

    Only tables without an alias of their own can be named as ``schema.table``.
    """
    select = column.find_ancestor(exp.Select)
    while select is not None:
        for table in _from_tables(select):
            entry = replaced.get(id(table))
            if entry is not None and entry.key == key and not entry.had_alias:
                return table
        select = select.find_ancestor(exp.Select)
    return None


# ----------------------------------------------------------------------- query text


def statement_text(sql: str, dialect: str = "duckdb") -> str:
    """The query ready to be embedded in a larger statement, otherwise exactly as written.

    One trailing ``;`` is removed (also when a comment follows it), trailing white space
    is dropped, and a text whose last line holds ``--`` ends with a newline, so that
    whatever is appended after it is not commented out.
    """
    text = _without_terminator(sql, dialect).rstrip()
    if "--" in text.rpartition("\n")[2]:
        text += "\n"
    return text


def _without_terminator(sql: str, dialect: str) -> str:
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except SqlglotError:
        return _TRAILING_SEMICOLON.sub("", sql)
    if tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        last = tokens[-1]
        return sql[: last.start] + sql[last.end + 1 :]
    return sql


def subquery(sql: str, dialect: str = "duckdb") -> str:
    """``(`` query ``)``, with the closing parenthesis on its own line (a query may end in a ``--`` comment)."""
    return f"(\n{statement_text(sql, dialect)}\n)"


def limit_zero(sql: str, dialect: str = "duckdb") -> str:
    """A statement with the query's columns and no rows (compiles the query, reads nothing)."""
    return f"SELECT * FROM {subquery(sql, dialect)} AS q LIMIT 0"
