"""``update`` and ``upgrade`` on DuckDB: change the published file in place, in one transaction for ``update``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from conveyor.design.models import TableDesign
from conveyor.errors import WarehouseError
from conveyor.faults import crash_point
from conveyor.lake.manifest import Manifest
from conveyor.warehouse.base import Transaction, qualified, quote
from conveyor.warehouse.duckdb import lock as duckdb_lock
from conveyor.warehouse.duckdb.files import WarehouseFile, connect_shared
from conveyor.warehouse.duckdb.sql import DuckDBRelations, select_extract


class DuckDBTransaction(DuckDBRelations, Transaction):
    """In-place changes to the published file, on one connection.

    Atomic transactions (``update``) run everything in one DuckDB transaction: DuckDB's DDL
    is transactional, so readers in this process see the old or the new state, and the
    commit is all or nothing. While it runs, the file is open for writing, so other
    processes cannot open it; updates are meant to be short.

    It holds the warehouse's lock (:mod:`conveyor.warehouse.duckdb.lock`) from before it
    opens the file until it commits or rolls back: a load that is building would otherwise
    rename its new file over the committed changes. A busy lock is waited for, at most
    ``lock_timeout_s`` seconds, and ``waiting`` is told what for.
    """

    def __init__(
        self,
        warehouse: WarehouseFile,
        *,
        run_id: str,
        atomic: bool,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ):
        self.atomic = atomic
        self._init_cursors()
        kind = "update" if atomic else "upgrade"
        self._lock_file = duckdb_lock.take(
            warehouse.path, duckdb_lock.holder_text(kind, run_id), timeout_s=lock_timeout_s, waiting=waiting
        )
        try:
            self.con = self._open(warehouse)
            if atomic:
                self.con.execute("BEGIN TRANSACTION")
        except BaseException:
            duckdb_lock.release(self._lock_file)
            raise

    @staticmethod
    def _open(warehouse: WarehouseFile) -> duckdb.DuckDBPyConnection:
        if not warehouse.path.exists():
            raise WarehouseError(
                f"{warehouse.describe()} does not exist yet.", hint='Run "conveyor load" to build it first.'
            )
        try:
            return connect_shared(warehouse.path)
        except duckdb.Error as exc:
            raise WarehouseError(
                f"cannot open {warehouse.describe()} for writing: {exc}",
                hint="Close programs that have it open, then try again.",
            ) from None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # one connection: every statement belongs to the same transaction
        return self.con

    def ensure_schema(self, schema: str) -> None:
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")

    def replace_rows(self, design: TableDesign, manifests: Sequence[Manifest]) -> int:
        if self.kind(design.name) != "table":
            self.drop(design.name)
            return self.load_chain(design, manifests)
        self._run(design, f"DELETE FROM {qualified(design.name)}")
        with self.parts(manifests[0], design) as source:
            rows = self._count(
                design, f"INSERT INTO {qualified(design.name)} {select_extract(design, manifests[0], source)}"
            )
        for manifest in manifests[1:]:
            rows += self.merge_table(design, manifest)
        return rows

    def refresh(self, design: TableDesign, sql: str) -> int:
        typed = design.typed
        if typed and self.kind(design.name) == "table":
            sql = self._checked(design, sql)
            self._run(design, f"DELETE FROM {qualified(design.name)}")
            return self._count(design, f"INSERT INTO {qualified(design.name)} {sql}")
        self.drop(design.name)
        return self.create_table(design, sql)

    def create_view(self, design: TableDesign, sql: str) -> None:
        self.drop(design.name)
        super().create_view(design, sql)

    def publish(self) -> None:
        try:
            if self.atomic:
                self.con.execute("COMMIT")
        except duckdb.Error as exc:
            self.con.close()
            duckdb_lock.release(self._lock_file)
            raise WarehouseError(f"committing the changes failed: {exc}") from None
        crash_point("duckdb.update.after_commit")
        try:
            # folds the WAL into the file; readers with open transactions can make it wait for
            # later, which is harmless: the next load checkpoints before it replaces the file
            self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        finally:
            self.con.close()
            duckdb_lock.release(self._lock_file)

    def abort(self) -> None:
        try:
            if self.atomic:
                self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the transaction is already gone
        finally:
            self.con.close()
            duckdb_lock.release(self._lock_file)
