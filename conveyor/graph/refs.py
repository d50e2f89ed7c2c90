"""What a query's table references are, once parsed: :class:`TableRef`, the relation each one means
(:func:`resolve`), and the error a query that cannot be parsed raises.

Kept apart from :mod:`conveyor.graph.sqldeps` (the parsing, with sqlglot) so that a project whose
parsed references come from the parse cache loads without importing sqlglot.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from conveyor.errors import UserError


class SqlParseError(UserError):
    """A relation's SQL cannot be parsed, or is not exactly one SELECT query.

    Attributes:
        detail: the short reason, without position.
        line: 1-based line in the SQL text, when known.
        column: 1-based column in the SQL text, when known.
        grammar: sqlglot's grammar did not accept the text (the warehouse's own may: see
            ``conveyor.project``); false for text that splits into no tokens, is empty, holds
            several statements or is not a query.
    """

    def __init__(self, detail: str, line: int | None = None, column: int | None = None, *, grammar: bool = False):
        self.detail = detail
        self.line = line
        self.column = column
        self.grammar = grammar
        where = f" at line {line}, column {column}" if line is not None and column is not None else ""
        super().__init__(f"invalid SQL{where}: {detail}")


@dataclass(frozen=True)
class TableRef:
    """One table a query reads, with names normalised and its position in the SQL text."""

    schema: str | None
    name: str
    catalog: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def key(self) -> tuple[str | None, str | None, str]:
        """The identity of the table, ignoring where it appears."""
        return (self.catalog, self.schema, self.name)


def is_own_catalog(catalog: str, catalogs: Set[str]) -> bool:
    """Whether a reference's catalog (normalised like ``TableRef``) names one of ``catalogs``.

    A quoted name matches exactly or in lower case: DuckDB compares catalog names without
    case (its names are given in lower case too), PostgreSQL rejects any other database.
    """
    return catalog in catalogs or catalog.lower() in catalogs


def resolve(
    ref: TableRef, own_schema: str, search_path: Sequence[str], known: Set[str], catalogs: Set[str] = frozenset()
) -> str | None:
    """Find the relation ``"schema.table"`` a table reference means.

    Args:
        ref: a reference from ``referenced_tables``.
        own_schema: the schema of the relation whose query holds the reference.
        search_path: further schemas to try for unqualified names, in order.
        known: all relation names of the project, normalised like ``TableRef``.
        catalogs: the warehouse's own database names: ``db.schema.table`` with one of
            them means ``schema.table`` (``dbt compile`` writes names that way).

    Returns:
        The qualified name; for an unqualified name found nowhere, the name in
        ``own_schema`` (so the caller can report it missing); ``None`` for a
        reference qualified with another catalog, which is outside the warehouse.
    """
    if ref.catalog is not None and not is_own_catalog(ref.catalog, catalogs):
        return None
    if ref.schema is not None:
        return f"{ref.schema}.{ref.name}"
    for schema in (own_schema, *search_path):
        candidate = f"{schema}.{ref.name}"
        if candidate in known:
            return candidate
    return f"{own_schema}.{ref.name}"
