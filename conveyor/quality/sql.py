"""The query that finds a data test's failing rows, in standard SQL every warehouse runs.

Each generic test first selects what it tests (the relation's key columns and the tested
value, filtered by ``where``) as a subquery, so that expressions and filters only ever see
the relation's own columns; the outer query keeps the rows that fail. ``count(*) OVER ()``
beside the first few failing rows gives the number of failures in the same round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from conveyor.design.models import TableDesign
from conveyor.design.types import SqlType
from conveyor.project import Project
from conveyor.quality.plan import DataTest
from conveyor.warehouse.sqltext import literal, qualified, quote

FAILURES_COLUMN = "conveyor_failures"
"""The column a failing-rows query adds: how many rows fail in all."""

_TEXT_TYPES = {"text", "varchar", "char", "uuid", "json"}


def failing_rows(test: DataTest, project: Project, name_of: Callable[[str], str], dialect: str) -> str:
    """A query returning one row per failure (a duplicated value counts once) of a row-level test.

    Args:
        name_of: maps a relation's name to the "schema.table" to read it from (its staging
            copy during a build, itself otherwise).
    """
    if test.kind == "assertion":
        return _assertion(test, project, name_of, dialect)
    design = project.relations[test.relation].design
    entry = test.entry
    assert entry is not None
    args = entry.args
    table = qualified(name_of(test.relation))
    where = f"\nWHERE {args.where}" if args.where else ""
    if entry.unique is not None:
        columns = entry.unique.columns or []
        targets = [quote(c) for c in columns] if columns else [_target(test)]
        names = columns or ["value"]
        picked = ", ".join(f"{t} AS {quote(n)}" for t, n in zip(targets, names, strict=True))
        present = " AND ".join(f"{quote(n)} IS NOT NULL" for n in names)
        grouped = ", ".join(quote(n) for n in names)
        return (
            f"SELECT {grouped}, count(*) AS occurrences\nFROM (SELECT {picked} FROM {table}{where}) AS tested\n"
            f"WHERE {present}\nGROUP BY {grouped}\nHAVING count(*) > 1"
        )
    keys = _keys(design)
    if entry.expression is not None:
        named = [quote(c) for c in expression_columns(entry.expression.sql, dialect) if quote(c) not in keys]
        shown = ", ".join([*keys, *named]) or "*"
        return f"SELECT {shown} FROM {table}\nWHERE ({entry.expression.sql}) IS NOT TRUE" + (
            f" AND ({args.where})" if args.where else ""
        )
    tested = f"SELECT {', '.join([*keys, f'{_target(test)} AS value'])} FROM {table}{where}"
    if entry.not_null is not None:
        return f"SELECT * FROM ({tested}) AS tested\nWHERE value IS NULL"
    if entry.accepted_values is not None:
        sql_type = _column_type(design, test.column)
        values = ", ".join(_literal(v, sql_type) for v in entry.accepted_values.values)
        return f"SELECT * FROM ({tested}) AS tested\nWHERE value IS NOT NULL AND value NOT IN ({values})"
    if entry.relationships is not None:
        parent = qualified(name_of(entry.relationships.to))
        field = quote(entry.relationships.field)
        return (
            f"SELECT * FROM ({tested}) AS tested\nWHERE value IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {parent} AS parent WHERE parent.{field} = tested.value)"
        )
    raise ValueError(f"{test.kind} is not a row-level test")


def row_count(test: DataTest, name_of: Callable[[str], str]) -> str:
    """The number of rows a volume test counts."""
    assert test.entry is not None
    where = f" WHERE {test.entry.args.where}" if test.entry.args.where else ""
    return f"SELECT count(*) FROM {qualified(name_of(test.relation))}{where}"


def with_count(sql: str, limit: int) -> str:
    """The first ``limit`` rows of a failing-rows query, each with the total count of failures."""
    return f"SELECT failing.*, count(*) OVER () AS {FAILURES_COLUMN}\nFROM (\n{sql}\n) AS failing\nLIMIT {limit}"


def probe(test: DataTest, project: Project) -> tuple[str, int] | None:
    """An aggregate over the tested relation that shows, cheaply, that a generic test passes.

    Returns ``(expression, most)``: the test passes when the expression, aggregated over the
    relation's rows, is at most ``most``; otherwise (or when the test has no probe: None)
    its failing-rows query decides. ``not_null``, ``accepted_values`` and ``expression``
    count their failing rows exactly as :func:`failing_rows` selects them. ``unique`` of one
    column (or expression) counts its non-NULL values: at most one cannot be duplicated
    (more than one: the grouped failing-rows query looks for duplicates). Several probes
    of one relation share one scan (:func:`probes`), one query instead of one per test.
    """
    entry = test.entry
    if entry is None or test.kind == "assertion":
        return None
    where = entry.args.where
    try:
        target = _target(test) if test.kind in ("not_null", "unique", "accepted_values") else ""
    except ValueError:
        return None

    def rows(condition: str) -> str:
        return f"count(CASE WHEN {condition}{f' AND ({where})' if where else ''} THEN 1 END)"

    if entry.not_null is not None:
        return rows(f"{target} IS NULL"), 0
    if entry.expression is not None:
        return rows(f"({entry.expression.sql}) IS NOT TRUE"), 0
    if entry.accepted_values is not None:
        sql_type = _column_type(project.relations[test.relation].design, test.column)
        values = ", ".join(_literal(v, sql_type) for v in entry.accepted_values.values)
        return rows(f"{target} IS NOT NULL AND {target} NOT IN ({values})"), 0
    if entry.unique is not None and not entry.unique.columns:
        return (f"count(CASE WHEN ({where}) THEN {target} END)" if where else f"count({target})"), 1
    return None


def probes(table: str, expressions: Sequence[str]) -> str:
    """One query: each probe expression aggregated over ``table`` (a staged or published name)."""
    shown = ",\n".join(f"{sql} AS probe_{n}" for n, sql in enumerate(expressions))
    return f"SELECT {shown}\nFROM {qualified(table)}"


def expression_columns(sql: str, dialect: str) -> list[str]:
    """The columns a SQL expression names, in order (none when sqlglot cannot read it)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, dialect=dialect)
    except SqlglotError:
        return []
    return list(dict.fromkeys(column.name for column in tree.find_all(exp.Column) if column.name))


def _target(test: DataTest) -> str:
    assert test.entry is not None
    expression = getattr(test.entry.args, "expression", None)
    if expression:
        return f"({expression})"
    if test.column is None:
        raise ValueError(f'the test "{test.name}" of "{test.relation}" names no column and no expression')
    return quote(test.column)


def _keys(design: TableDesign) -> list[str]:
    """The columns that identify a failing row: the primary key, else the natural key."""
    keys = design.constraints.primary_key or design.constraints.natural_key
    return [quote(c) for c in keys]


def _column_type(design: TableDesign, column: str | None) -> SqlType | None:
    for c in design.columns:
        if c.name == column and c.type:
            return c.sql_type
    return None


def _literal(value: object, sql_type: SqlType | None) -> str:
    """A YAML scalar as a SQL literal of the tested column's type (text: quoted; numbers: as written)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    textual = sql_type is not None and sql_type.name in _TEXT_TYPES
    if isinstance(value, int | Decimal | float) and not textual:
        return str(value)
    return literal(str(value))


def _assertion(test: DataTest, project: Project, name_of: Callable[[str], str], dialect: str) -> str:
    """A custom assertion's query with the names of relations this build rebuilds pointed at their copies."""
    from conveyor.graph.splice import splice_tables, statement_text
    from conveyor.graph.sqldeps import parse_sql

    assert test.sql is not None
    mapping = {name: name_of(name) for name in test.reads}
    if all(mapping[name] == name for name in mapping):
        return statement_text(test.sql, dialect)
    tree = parse_sql(test.sql, dialect)
    search_path = project.settings.defaults.search_path
    spliced = splice_tables(
        test.sql,
        tree,
        mapping,
        own_schema=search_path[0] if search_path else "",
        search_path=search_path,
        known=set(project.relations),
        catalogs=project.catalogs,
    )
    return statement_text(spliced, dialect)


def described(values: Sequence[object]) -> str:
    """Values for a message: ``'a', 'b'``."""
    return ", ".join(repr(v) for v in values)
