"""Redshift's SQL habits (see :mod:`conveyor.warehouse.dialect`).

Each flag is stated here rather than inherited from PostgreSQL's dialect, so a change there
never silently changes Redshift.
"""

from __future__ import annotations

from conveyor.warehouse.dialect import Dialect


class RedshiftDialect(Dialect):
    """Redshift: PostgreSQL's type names and database naming; designs' layout attributes apply."""

    NAME = "redshift"
    CATALOG_FROM_FILE_NAME = False
    CATALOG_CASE_INSENSITIVE = False
    BINDS_IN_DUCKDB = False
    NATIVE_TYPES = "postgres"
    LAYOUT_ATTRIBUTES = True
    LOCAL_FILE = False
    COLUMNS_CASE_INSENSITIVE = False  # not checked yet: Redshift folds names unless enable_case_sensitive_identifier
    MAX_IDENTIFIER = 127
