"""DuckDB's SQL habits (see :mod:`conveyor.warehouse.dialect`)."""

from __future__ import annotations

from pathlib import PurePath

from conveyor.warehouse.dialect import Dialect


class DuckDBDialect(Dialect):
    """DuckDB: a file's catalog is named after the file, matched case-insensitively; its parser is at hand."""

    NAME = "duckdb"
    CATALOG_FROM_FILE_NAME = True
    CATALOG_CASE_INSENSITIVE = True
    BINDS_IN_DUCKDB = True
    NATIVE_TYPES = "duckdb"
    LOCAL_FILE = True
    COLUMNS_CASE_INSENSITIVE = True
    MAX_IDENTIFIER = None

    @classmethod
    def database_name(cls, dsn: str) -> str | None:
        """The file name without a leading dot, up to its first dot (``warehouse.duckdb`` -> ``warehouse``)."""
        name = PurePath(dsn.removeprefix("duckdb:///").removeprefix("duckdb://")).name
        catalog = name.lstrip(".").split(".")[0]
        return catalog if catalog and "${" not in dsn else None

    @classmethod
    def may_accept(cls, sql: str) -> bool:
        """DuckDB's own parser decides, without a database: one SELECT statement."""
        import duckdb

        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error:
            return False
        return len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT
