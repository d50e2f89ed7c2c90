"""A load on DuckDB: build a private file beside the warehouse, publish it with one atomic rename."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb

from conveyor.design.models import TableDesign
from conveyor.errors import WarehouseError
from conveyor.faults import crash_point
from conveyor.lake.manifest import Manifest, fsync_dir
from conveyor.warehouse.base import literal, quote
from conveyor.warehouse.duckdb import lock as duckdb_lock
from conveyor.warehouse.duckdb.files import checkpoint_published, file_identity, fsync_file, staging_path
from conveyor.warehouse.duckdb.sql import DuckDBRelations


class DuckDBBuild(DuckDBRelations):
    """One build: a private DuckDB file, published by renaming it over the warehouse."""

    def __init__(
        self,
        target: Path,
        schemas: list[str],
        run_id: str,
        keep_schemas: bool,
        keep_backup: bool = True,
        resume_from: str | None = None,
    ):
        self.target = target
        self.keep_backup = keep_backup
        self.schemas = schemas
        self.staging = staging_path(target, resume_from or run_id)
        self._init_cursors()
        self._kept_views: list[tuple[str, str, str, str | None]] = []
        """Views of the schemas this build keeps: (schema, name, CREATE VIEW, comment), in creation order."""
        self._waiting_views: list[tuple[str, str, str, str | None]] = []
        """Kept views not created yet: they read a relation this build has not made."""
        self._views_lock = threading.Lock()
        self._kept_column_comments: list[tuple[str, str, str, str]] = []
        self._lock_file = duckdb_lock.take(target, duckdb_lock.holder_text("load", run_id))
        self._base = file_identity(target)
        """The published file this build started from: publishing over any other version would lose it."""
        try:
            if resume_from and not self.staging.exists():
                raise WarehouseError(
                    f"the build of run {resume_from} is no longer there to resume (another load replaced it).",
                    hint="Run the load again without --resume.",
                )
            self._remove_leftovers(resuming=resume_from is not None)
            self.con = duckdb.connect(str(self.staging))
            for schema in schemas:
                self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            if keep_schemas and target.exists():
                self._copy_kept_schemas(copy_tables=resume_from is None)
        except BaseException:
            self.abort()
            raise

    def _remove_leftovers(self, *, resuming: bool) -> None:
        # builds that crashed before publishing; the lock proves none is still running. A new
        # (not resumed) build also drops a kept build of its own run id: a pipeline retries a
        # failed load under the same run id, and must not reopen the failed attempt's file
        for leftover in self.target.parent.glob(f".conveyor_build_*.{self.target.name}.building*"):
            if not resuming or leftover.name not in (self.staging.name, f"{self.staging.name}.wal"):
                leftover.unlink(missing_ok=True)

    def _copy_kept_schemas(self, *, copy_tables: bool = True) -> None:
        """Carry over every schema this build does not replace, with DDL, data and comments.

        Views follow the tables, so that the build can read them (dbt's layout: a load of
        the mart tables reads the staging views). A view that reads a relation this build
        has not made yet waits, and is created as soon as it binds; at publish every kept
        view is created again, over the relations as they are then. A resumed build has its
        tables already.
        """
        try:
            self.con.execute(f"ATTACH {literal(str(self.target))} AS previous (READ_ONLY)")
        except duckdb.Error as exc:
            raise WarehouseError(
                f"cannot read the published warehouse {self.target} to keep its other schemas: {exc}",
                hint="Close programs that hold it open for writing, or load every schema.",
            ) from None
        rebuilt = set(self.schemas)
        tables = self.con.execute(
            "SELECT schema_name, table_name, sql, comment FROM duckdb_tables() "
            "WHERE database_name = 'previous' AND NOT internal"
        ).fetchall()
        views = self.con.execute(
            "SELECT schema_name, view_name, sql, comment FROM duckdb_views() "
            "WHERE database_name = 'previous' AND NOT internal ORDER BY view_oid"
        ).fetchall()
        for schema, *_ in [*tables, *views] if copy_tables else []:
            if schema not in rebuilt:
                self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        for schema, name, create_sql, comment in tables if copy_tables else []:
            if schema not in rebuilt:
                self.con.execute(create_sql)
                target = f"{quote(schema)}.{quote(name)}"
                self.con.execute(f"INSERT INTO {target} SELECT * FROM previous.{target}")
                if comment:
                    self.con.execute(f"COMMENT ON TABLE {target} IS {literal(comment)}")
        self._kept_views = [(s, v, sql, comment) for s, v, sql, comment in views if s not in rebuilt]
        self._kept_column_comments = [
            row
            for row in self.con.execute(
                "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
                "WHERE database_name = 'previous' AND NOT internal AND comment IS NOT NULL"
            ).fetchall()
            if row[0] not in rebuilt
        ]
        self.con.execute("DETACH previous")
        self._waiting_views = list(self._kept_views)
        self._create_waiting_views()

    def _create_waiting_views(self, built: str | None = None) -> None:
        """Create the waiting kept views that bind now, and then those that read the ones made.

        ``built`` is the table name of a relation just made: only views whose text names it
        can bind because of it. None tries every waiting view.
        """
        with self._views_lock:
            cursor = self.con.cursor()
            try:
                names = None if built is None else {built.lower()}
                while self._waiting_views and (names is None or names):
                    made: set[str] = set()
                    for view in list(self._waiting_views):
                        if names is not None and not any(n in view[2].lower() for n in names):
                            continue
                        try:
                            self._create_kept_view(cursor, *view)
                        except duckdb.Error:
                            continue  # it reads something not built yet
                        self._waiting_views.remove(view)
                        made.add(view[1].lower())
                    names = made
            finally:
                cursor.close()

    @staticmethod
    def _create_kept_view(
        cursor: duckdb.DuckDBPyConnection, schema: str, name: str, create_sql: str, comment: str | None
    ) -> None:
        target = f"{quote(schema)}.{quote(name)}"
        cursor.execute(f"DROP VIEW IF EXISTS {target}")
        cursor.execute(create_sql)
        if comment:
            cursor.execute(f"COMMENT ON VIEW {target} IS {literal(comment)}")

    def load_table(self, design: TableDesign, manifest: Manifest) -> int:
        rows = super().load_table(design, manifest)
        self._built(design)
        return rows

    def create_table(self, design: TableDesign, sql: str) -> int:
        rows = super().create_table(design, sql)
        self._built(design)
        return rows

    def create_view(self, design: TableDesign, sql: str) -> None:
        super().create_view(design, sql)
        self._built(design)

    def _built(self, design: TableDesign) -> None:
        """A relation exists now: kept views waiting for it may bind."""
        if self._waiting_views:
            self._create_waiting_views(design.table_name)

    def publish(self) -> None:
        try:
            self._restore_kept_views()
            self._close_cursors()
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                raise WarehouseError(f"cannot checkpoint the new warehouse file: {exc}") from None
            self.con.close()
            fsync_file(self.staging)
            self._refuse_if_changed()
            checkpoint_published(self.target)
            backup = self.target.with_name(self.target.name + ".previous")
            backup.unlink(missing_ok=True)
            if self.target.exists() and self.keep_backup:
                os.link(self.target, backup)
            crash_point("duckdb.publish.before_rename")
            os.replace(self.staging, self.target)
            fsync_dir(self.target.parent)
            crash_point("duckdb.publish.after_rename")
        except BaseException:
            self.abort()
            raise
        self._release()

    def _refuse_if_changed(self) -> None:
        """Refuse to publish over a warehouse file that changed since this build began.

        Updates wait for the lock a build holds, so only a program that ignores it (a DuckDB
        client writing to the file) can get here. Its changes would be lost by the rename,
        and a resumed build would lose them too, so the build is discarded.
        """
        if file_identity(self.target) != self._base:
            raise WarehouseError(
                f"{self.target} changed while this load was building (another program wrote to it), so "
                "publishing would throw those changes away; nothing was published and the build was discarded.",
                hint="Stop programs that write to the warehouse file, then run the load again.",
            )

    def suspend(self) -> None:
        """Keep the unpublished file for ``conveyor load --resume``; the warehouse is untouched."""
        try:
            self._close_cursors()
            self.con.execute("CHECKPOINT")
            self.con.close()
        finally:
            self._release()

    def _restore_kept_views(self) -> None:
        """Create every view of the kept schemas again, over the relations as they are now.

        Each one again: a view made early in the build may read a relation that was
        replaced since (a resumed build drops and rebuilds what failed).
        """
        self._waiting_views = list(self._kept_views)
        self._create_waiting_views()
        for schema, name, create_sql, comment in self._waiting_views[:1]:
            try:
                self._create_kept_view(self.con, schema, name, create_sql, comment)
            except duckdb.Error as exc:
                raise WarehouseError(f'the kept view "{schema}.{name}" no longer binds: {exc}') from None
        for schema, table, column, comment in self._kept_column_comments:
            target = f"{quote(schema)}.{quote(table)}.{quote(column)}"
            self.con.execute(f"COMMENT ON COLUMN {target} IS {literal(comment)}")

    def abort(self) -> None:
        try:
            if hasattr(self, "con"):
                self.con.close()
        finally:
            for leftover in (self.staging, Path(f"{self.staging}.wal")):
                leftover.unlink(missing_ok=True)
            self._release()

    def _release(self) -> None:
        duckdb_lock.release(self._lock_file)
