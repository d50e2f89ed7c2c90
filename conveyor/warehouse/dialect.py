"""What the project needs to know of a warehouse before connecting to it: its SQL dialect's habits.

A :class:`Dialect` is a small class per engine (``conveyor/warehouse/<engine>/dialect.py``),
in the manner of sqlglot's dialect classes: flags and a few methods, no driver imports, so
loading a project or validating it never imports a database client. The warehouse classes
carry the behaviour that needs a connection; this carries what a name, a DSN or a query
text says on its own. Code outside the engine folders asks the dialect, never the engine's
name.
"""

from __future__ import annotations

import functools
import re
from importlib import import_module
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

#: engine type -> "module:class" of its dialect
DIALECTS = {
    "duckdb": "conveyor.warehouse.duckdb.dialect:DuckDBDialect",
    "postgres": "conveyor.warehouse.postgres.dialect:PostgresDialect",
    "redshift": "conveyor.warehouse.redshift.dialect:RedshiftDialect",
}


class Dialect:
    """A warehouse's SQL habits. The defaults are PostgreSQL's, the reference dialect."""

    NAME: ClassVar[str] = ""
    CATALOG_FROM_FILE_NAME: ClassVar[bool] = False
    """The database's name is its file's name (so a file named like a schema makes names ambiguous)."""
    CATALOG_CASE_INSENSITIVE: ClassVar[bool] = False
    """``db.schema.table`` matches the database name whatever its case."""
    BINDS_IN_DUCKDB: ClassVar[bool] = False
    """Plain ``validate`` binds queries in an in-memory DuckDB: exact for DuckDB SQL, a best effort for others."""
    NATIVE_TYPES: ClassVar[str] = "postgres"
    """Whose native type names (``int8``, ``float8`` ...) a type text of this dialect may use."""
    LAYOUT_ATTRIBUTES: ClassVar[bool] = False
    """Designs' ``attributes`` (physical layout) mean something to this warehouse and are checked."""
    LOCAL_FILE: ClassVar[bool] = False
    """The warehouse is a file on this machine (its DSN a path), checked before a command writes."""
    COLUMNS_CASE_INSENSITIVE: ClassVar[bool] = False
    """Column names that differ only in case are the same column."""
    MAX_IDENTIFIER: ClassVar[int | None] = 63
    """The longest name (UTF-8 bytes) kept as written; a longer one is cut short without an error
    (PostgreSQL's NAMEDATALEN - 1). None: no such limit."""

    @classmethod
    def database_name(cls, dsn: str) -> str | None:
        """The name SQL gives the DSN's database: libpq's ``dbname``, else the user name. None when unknown."""
        found = _dsn_part(dsn, "dbname") or _dsn_part(dsn, "user")
        return found if found and "${" not in found else None

    @classmethod
    def database_names(cls, name: str) -> frozenset[str]:
        """The spellings of the database's name that ``db.schema.table`` may use."""
        return frozenset({name, name.lower()} if cls.CATALOG_CASE_INSENSITIVE else {name})

    @classmethod
    def may_accept(cls, sql: str) -> bool:
        """Whether a query sqlglot cannot parse may still run here. Without the warehouse's own parser
        at hand, the text gets the benefit of the doubt: the warehouse reports a real mistake at build."""
        return True


@functools.cache
def dialect(engine_type: str) -> type[Dialect]:
    """The dialect of an engine type; PostgreSQL's for a type this version does not know (the
    configuration check reports the unknown type itself)."""
    target = DIALECTS.get(engine_type)
    if target is None:
        return Dialect
    module, _, name = target.partition(":")
    found: type[Dialect] = getattr(import_module(module), name)
    return found


def _dsn_part(dsn: str, key: str) -> str | None:
    """``dbname`` or ``user`` of a libpq DSN, a URL (``postgresql://user@host/dbname``) or ``key=value`` pairs."""

    if "://" not in dsn:
        match = re.search(rf"(?:^|\s){key}\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn)
        if not match:
            return None
        value = match.group(1)
        return re.sub(r"\\(.)", r"\1", value[1:-1]) if value.startswith("'") else value
    try:
        url = urlsplit(dsn)
    except ValueError:
        return None
    given = parse_qs(url.query).get(key)
    if given:
        return given[0]
    if key == "dbname":
        return unquote(url.path.lstrip("/")) or None
    return unquote(url.username) if url.username else None
