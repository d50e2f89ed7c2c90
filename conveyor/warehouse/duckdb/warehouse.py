"""DuckDB, the embedded warehouse: build into a new file, publish by atomic rename.

DuckDB cannot rename schemas, and a process that writes a DuckDB file holds an exclusive
lock on it for as long as the connection is open, so building "in place" would both mix
old and new relations and lock every reader out for the whole load. Instead a build
writes a private file beside the warehouse, copies in the schemas it does not rebuild,
checkpoints it, and publishes with ``os.replace``: one atomic rename. A reader that opens
the warehouse gets the old file or the new one, never a mix, and is never locked out.
The previous file stays as ``<file>.previous`` (a hard link, so it costs no copy).
See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from conveyor.config.settings import EnvironmentConfig
from conveyor.errors import UserError, WarehouseError
from conveyor.warehouse.base import QueryResult, Warehouse, qualified
from conveyor.warehouse.duckdb.build import DuckDBBuild
from conveyor.warehouse.duckdb.files import connect_shared, duckdb_path, relations_in, staging_path
from conveyor.warehouse.duckdb.transaction import DuckDBTransaction


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file."""

    ENGINE = "duckdb"
    DIALECT = "duckdb"
    PUBLISH = "file_swap"
    MAX_DECIMAL_PRECISION = 38

    def __init__(self, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None):
        super().__init__(name, dsn)
        self.path = duckdb_path(dsn, root)
        self.keep_backup = config.keep_backup if config else True

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def kept_build(self, run_id: str) -> bool:
        return staging_path(self.path, run_id).exists()

    def transaction(
        self,
        *,
        run_id: str,
        atomic: bool = True,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ) -> DuckDBTransaction:
        return DuckDBTransaction(self, run_id=run_id, atomic=atomic, lock_timeout_s=lock_timeout_s, waiting=waiting)

    def begin(
        self, schemas: Sequence[str], *, run_id: str, keep_schemas: bool = True, resume_from: str | None = None
    ) -> DuckDBBuild:
        return DuckDBBuild(self.path, list(schemas), run_id, keep_schemas, self.keep_backup, resume_from)

    def connect(self, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """Open the published file (read-only by default)."""
        return connect_shared(self.path, read_only=read_only)

    def relations(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        with self.connect() as con:
            return relations_in(con, "")

    def query(self, sql: str, limit: int) -> QueryResult:
        """The published file, opened read-only: the query cannot change it."""
        if not self.path.exists():
            raise WarehouseError(f"{self.describe()} does not exist yet.", hint='Run "conveyor load" first.')
        with self.connect() as con:
            try:
                cursor = con.execute(sql)
                columns = [column[0] for column in cursor.description or []]
                rows = cursor.fetchmany(limit + 1) if columns else []
            except duckdb.Error as exc:
                raise UserError(f"the query failed: {str(exc).strip()}", hint="Fix the SQL.") from None
        return QueryResult(columns, rows[:limit], len(rows) > limit)

    @contextmanager
    def read_relation(self, name: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatchReader]:
        """Stream a published relation; uuid and json keep their Arrow extension types, instants are UTC."""
        if name not in self.relations():
            raise WarehouseError(f'"{name}" is not published in {self.describe()}.', hint='Run "conveyor load" first.')
        with self.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET arrow_lossless_conversion = true")
            yield con.sql(f"SELECT * FROM {qualified(name)}").to_arrow_reader(batch_rows)
