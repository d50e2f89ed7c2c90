"""PostgreSQL, a warehouse server: the environment object, its connections and how relations are read back.

A load builds into ``<schema>$staging`` and publishes by renaming schemas (:mod:`.build`);
``update`` and ``upgrade`` change published schemas in place (:mod:`.transaction`). See
docs/warehouses.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pyarrow as pa
from psycopg.conninfo import conninfo_to_dict

from conveyor import cancel
from conveyor.config.secrets import mask_dsn, scrub, scrub_dsn
from conveyor.config.settings import EnvironmentConfig
from conveyor.errors import UserError, WarehouseError
from conveyor.warehouse.base import (
    QueryResult,
    Warehouse,
)
from conveyor.warehouse.postgres.build import BUILD_MARK, PostgresBuild
from conveyor.warehouse.postgres.catalog import BACKUP, STAGING
from conveyor.warehouse.postgres.connect import end_with_client, error_message, libpq_dsn
from conveyor.warehouse.postgres.transaction import PostgresTransaction

_RELATION_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "view"}


class PostgresWarehouse(Warehouse):
    """A PostgreSQL database (13+)."""

    ENGINE = "postgres"
    DIALECT = "postgres"
    PUBLISH = "schema_swap"
    MAX_DECIMAL_PRECISION = 1000
    """Keys are checked before publishing (with examples), not declared: see docs/warehouses.md."""

    def __init__(self, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None):
        super().__init__(name, dsn)
        self.keep_backup = config.keep_backup if config else True
        self.readers = list(config.readers) if config else []
        self.writers = list(config.writers) if config else []

    def describe(self) -> str:
        try:
            info = conninfo_to_dict(libpq_dsn(self.dsn))
        except psycopg.Error:
            return f"PostgreSQL {mask_dsn(self.dsn)}"
        host = info.get("host") or info.get("hostaddr") or "localhost"
        port = info.get("port") or "5432"
        user = f"{info['user']}@" if info.get("user") else ""
        return f"PostgreSQL {user}{host}:{port}/{info.get('dbname') or info.get('user') or ''}"

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection; failures become a WarehouseError without secrets."""
        options: dict[str, Any] = {"autocommit": True, "client_encoding": "UTF8"}
        try:
            given = conninfo_to_dict(libpq_dsn(self.dsn))
            defaults = {"application_name": "conveyor", "connect_timeout": 15}
            options.update({key: value for key, value in defaults.items() if key not in given})
            con = psycopg.connect(libpq_dsn(self.dsn), **options)
        except psycopg.Error as exc:
            text = scrub(scrub_dsn(error_message(exc), self.dsn))
            raise WarehouseError(
                f'cannot connect to the PostgreSQL warehouse "{self.name}" ({mask_dsn(self.dsn)}): {text}',
                hint="Check that the server is running and the environment's dsn in conveyor.yaml "
                "(host, port, database, user and the password variable).",
            ) from None
        end_with_client(con)
        return cancel.watch_connection(con)

    def query(self, sql: str, limit: int) -> QueryResult:
        """A read-only transaction (``default_transaction_read_only``): the query cannot write."""
        with closing(self.connect()) as con:
            con.execute("SET default_transaction_read_only = on")
            try:
                cursor = con.execute(sql)
                columns = [column.name for column in cursor.description or []]
                rows = cursor.fetchmany(limit + 1) if columns else []
            except psycopg.Error as exc:
                text = scrub(scrub_dsn(error_message(exc), self.dsn))
                raise UserError(f"the query failed: {text}", hint="Fix the SQL.") from None
        return QueryResult(columns, [tuple(row) for row in rows[:limit]], len(rows) > limit)

    def kept_build(self, run_id: str) -> bool | None:
        """Whether a staging schema marked with the run is there (publishing renames it away)."""
        with closing(self.connect()) as con:
            try:
                row = con.execute(
                    "SELECT count(*) FROM pg_namespace WHERE right(nspname, %s) = %s "
                    "AND obj_description(oid, 'pg_namespace') = %s",
                    (len(STAGING), STAGING, BUILD_MARK + run_id),
                ).fetchone()
            except psycopg.Error:
                return None  # a catalog that cannot tell (the resume then finds out)
        return bool(row and row[0])

    def begin(
        self, schemas: Sequence[str], *, run_id: str, keep_schemas: bool = True, resume_from: str | None = None
    ) -> PostgresBuild:
        if not keep_schemas:
            raise WarehouseError(
                "a PostgreSQL warehouse is a shared database: a load replaces only the schemas it rebuilds "
                "and never drops the others (keep_schemas=False is not supported)."
            )
        return PostgresBuild(self, list(schemas), run_id, resume_from)

    def transaction(
        self,
        *,
        run_id: str,
        atomic: bool = True,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ) -> PostgresTransaction:
        return PostgresTransaction(self, run_id=run_id, atomic=atomic, lock_timeout_s=lock_timeout_s, waiting=waiting)

    @contextmanager
    def read_relation(self, name: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatchReader]:
        """Stream a published relation in the lake's exact types.

        It is read like a PostgreSQL source table (ADBC's binary COPY, then the source's exact
        conversions): numeric(p,s) is decimal128(p,s) (unconstrained numeric is decimal(38,9),
        and a value that does not fit is an error), timestamptz is timestamp[us, UTC], uuid
        and json/jsonb keep their Arrow extension types, bytea is binary, arrays are lists.
        """
        from conveyor.errors import ConveyorError, ExtractError, TransientError
        from conveyor.sources.base import ReadRequest
        from conveyor.sources.postgres import PostgresSource

        if name not in self.relations():
            raise WarehouseError(f'"{name}" is not published in {self.describe()}.', hint='Run "conveyor load" first.')
        schema, _, table = name.partition(".")
        source = PostgresSource(self.name, libpq_dsn(self.dsn))
        batches: Iterator[pa.RecordBatch] | None = None
        try:
            try:
                info = source.describe(schema, table)
                odd = [f"{c.name} ({c.native_type})" for c in info.columns if c.type is None]
                if odd:
                    raise ExtractError(f"column(s) {', '.join(odd)} have no exact design type.")
                columns = tuple((c.name, c.type) for c in info.columns if c.type is not None)
                request = ReadRequest(schema, table, columns, batch_rows=batch_rows)
                batches = source.read(request)
                reader = pa.RecordBatchReader.from_batches(request.arrow_schema, batches)
            except ConveyorError as exc:
                raise WarehouseError(f'reading "{name}" from {self.describe()} failed: {exc.message}') from None
            try:
                yield reader
            except (ExtractError, TransientError) as exc:  # the stream broke while being read
                raise WarehouseError(f'reading "{name}" from {self.describe()} failed: {exc.message}') from None
        finally:
            close = getattr(batches, "close", None)  # ends the COPY and its connection
            if close is not None:
                with suppress(Exception):
                    close()
            source.close()

    def relations(self) -> dict[str, str]:
        with self.connect() as con:
            rows = con.execute(
                """
                SELECT n.nspname, c.relname, c.relkind
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND NOT c.relispartition
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
                  AND n.nspname NOT LIKE %s AND n.nspname NOT LIKE %s
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
                ORDER BY 1, 2
                """,
                ("%" + STAGING, "%" + BACKUP),
            ).fetchall()
        return {f"{schema}.{name}": _RELATION_KINDS[kind] for schema, name, kind in rows}
