"""``update`` and ``upgrade`` on PostgreSQL: change published schemas in place (one transaction for ``update``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import psycopg.errors

from conveyor.design.models import TableDesign
from conveyor.errors import LoadError, WarehouseError
from conveyor.lake.manifest import Manifest
from conveyor.warehouse import ddl
from conveyor.warehouse.base import (
    Transaction,
    qualified,
    quote,
)
from conveyor.warehouse.postgres.build import PostgresBuild, analyze_table, lock_schema, require_columns
from conveyor.warehouse.postgres.catalog import DependentView, grants_of, name_session, table_shape, views_reading
from conveyor.warehouse.postgres.connect import Server, error_message, log


class PostgresTransaction(PostgresBuild, Transaction):
    """In-place changes to the published schemas (``update``, ``upgrade``), on one connection.

    Atomic transactions (``update``) run everything in one PostgreSQL transaction, each
    step in a savepoint: DDL is transactional in PostgreSQL, so readers see the old state
    until the commit and the new one after it, and a failure rolls everything back.
    Non-atomic ones (``upgrade``) commit each step (a relation's DDL, data and comments) on
    its own. ``staged(name)`` is the identity: the published relations are changed directly.

    How relations are replaced, chosen so readers keep reading without waiting:

    - Source tables: ``DELETE`` all rows, then COPY the extract (and merge increments by
      primary key). ``DELETE`` rather than ``TRUNCATE``: TRUNCATE takes an ACCESS EXCLUSIVE
      lock until the commit, blocking every reader of the table for the whole update (and
      is not MVCC-safe for older snapshots), while ``DELETE`` leaves readers on the old rows
      until the commit; the price is dead rows for autovacuum. The table is recreated only
      when its columns no longer match the design.
    - CTAS relations: ``DELETE`` + ``INSERT ... SELECT`` when the table's columns match the
      query's (typed: the design's DDL; untyped: the query's result), which keeps grants,
      comments and the views that read the table; otherwise DROP and CREATE.
    - Views: left alone when the definition is unchanged, ``CREATE OR REPLACE VIEW`` when
      PostgreSQL accepts the new columns, DROP and CREATE otherwise.

    Views that read a dropped relation (PostgreSQL binds them by OID, so the DROP would
    fail) are dropped with it and recreated from their definitions, with their comments,
    grants and owner, as soon as what they read exists again. One that no longer binds
    when an atomic transaction is published fails it (nothing changes); a non-atomic one
    (upgrade, whose steps have committed) logs its definition as a warning. Grants a dropped
    relation had, and those of the environment's ``readers`` and ``writers``, are given to
    its replacement. Dropping a relation takes an ACCESS EXCLUSIVE lock until the commit, so
    its readers wait for the update; PostgreSQL may break a lock cycle with such a reader by
    failing one of the two (then the update rolls back and can be run again).

    Each schema the transaction touches is locked with the advisory lock loads take, so a
    load, update or upgrade of the same schema cannot run at the same time: a load that
    built ``s$staging`` would otherwise swap it in over the committed update. ``lock`` takes
    them all up front, in name order; a busy one is waited for, at most ``lock_timeout_s``
    seconds (``waiting`` is told what for), while a load never waits for one.
    """

    FREEZE = False  # tables are filled after DELETE, in a transaction that began earlier

    def __init__(
        self,
        warehouse: Server,
        *,
        run_id: str,
        atomic: bool,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ):
        self.warehouse = warehouse
        self.run_id = run_id
        self.atomic = atomic
        self.lock_timeout_s = lock_timeout_s
        self.waiting = waiting
        self.schemas = []
        self._finished = False
        self._claimed: set[str] = set()
        self._schemas_made: set[str] = set()
        self._pending: dict[str, DependentView] = {}
        """Views dropped with a relation they read, waiting to be recreated."""
        self._acl: dict[str, list[tuple[str, str, bool]]] = {}
        """Grants of dropped relations, for their replacements."""
        self.con = warehouse.connect()
        try:
            name_session(self.con, f"{'update' if atomic else 'upgrade'} run {run_id}")
            self._check_roles()
            if atomic:
                # one implicit transaction from here to publish/abort; psycopg's transaction
                # blocks inside it are savepoints
                self.con.autocommit = False
                self.con.execute("SELECT 1")
        except BaseException:
            self.abort()
            raise

    # ------------------------------------------------------------------ plumbing

    def staged(self, name: str) -> str:
        return name

    def _connection(self) -> psycopg.Connection[Any]:
        if self._finished or self.con.closed:
            raise WarehouseError("this transaction is already committed or rolled back.")
        return self.con

    def lock(self, names: Sequence[str]) -> None:
        for schema in sorted({name.partition(".")[0] for name in names}):
            self._claim(schema)

    def _claim(self, name: str) -> None:
        schema = name.partition(".")[0]
        if schema in self._claimed:
            return
        try:
            lock_schema(
                self._connection(), schema, self.warehouse.name, timeout_s=self.lock_timeout_s, waiting=self.waiting
            )
        except psycopg.Error as exc:
            raise WarehouseError(f'locking schema "{schema}" failed in PostgreSQL: {error_message(exc)}') from None
        self._claimed.add(schema)

    @contextmanager
    def _transaction(self, design: TableDesign, doing: str = "building") -> Iterator[psycopg.Connection[Any]]:
        """A savepoint (atomic) or a transaction of its own; PostgreSQL errors become a LoadError."""
        self._claim(design.name)
        with super()._transaction(design, doing) as con:
            yield con

    def _kind(self, name: str) -> str | None:
        """ "table", "view" (or another relkind) or None: what ``name`` is now."""
        row = (
            self._connection()
            .execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (qualified(name),))
            .fetchone()
        )
        if not row:
            return None
        return "view" if row[0] == "v" else "table" if row[0] in ("r", "p") else str(row[0])

    def _shape_matches(self, design: TableDesign, probe: str, *, not_null: bool) -> bool:
        """Whether ``design.name`` has the columns (names, types, NOT NULL) of the table ``probe`` creates.

        ``probe`` creates ``pg_temp.conveyor_shape``; it is rolled back.
        """
        same = False
        with self._transaction(design, "comparing the columns of") as con:
            con.execute(probe)
            same = table_shape(con, "pg_temp.conveyor_shape", not_null) == table_shape(con, design.name, not_null)
            raise psycopg.Rollback()
        return same

    # ------------------------------------------------------------------ relations

    def ensure_schema(self, schema: str) -> None:
        self._claim(schema)
        con = self._connection()
        try:
            with con.transaction():
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
                for role in self.warehouse.readers:
                    con.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {quote(role)}")
                for role in self.warehouse.writers:
                    con.execute(f"GRANT USAGE, CREATE ON SCHEMA {quote(schema)} TO {quote(role)}")
        except psycopg.Error as exc:
            raise LoadError(f'creating schema "{schema}" failed in PostgreSQL: {error_message(exc)}') from None

    def _schema_of(self, design: TableDesign) -> None:
        """Create the schema of a relation about to be created, once (an update of a new schema)."""
        schema = design.name.partition(".")[0]
        if schema not in self._schemas_made:
            self.ensure_schema(schema)
            self._schemas_made.add(schema)

    def load_table(self, design: TableDesign, manifest: Manifest, *, analyze: bool = True) -> int:
        self._schema_of(design)
        rows = super().load_table(design, manifest, analyze=analyze)
        self._created(design)
        return rows

    def replace_rows(self, design: TableDesign, manifests: Sequence[Manifest]) -> int:
        require_columns(design, manifests[0])
        typed = design.typed
        probe = ddl.create_table(design, "postgres", name="pg_temp.conveyor_shape") if typed else ""
        if not (self._kind(design.name) == "table" and typed and self._shape_matches(design, probe, not_null=True)):
            self.drop(design.name)
            return self.load_chain(design, manifests)
        with self._transaction(design, "loading") as con:
            con.execute(f"DELETE FROM {qualified(design.name)}")
            rows = self._copy(con, design, manifests[0], design.name)
            for statement in ddl.comments(design):
                con.execute(statement)
            if len(manifests) == 1:
                analyze_table(con, design.name)
        for index, manifest in enumerate(manifests[1:], 2):
            rows += self.merge_table(design, manifest, analyze=index == len(manifests))
        return rows

    def create_table(self, design: TableDesign, sql: str) -> int:
        self._schema_of(design)
        rows = super().create_table(design, sql)
        self._created(design)
        return rows

    def refresh(self, design: TableDesign, sql: str) -> int:
        if self._kind(design.name) == "table":
            shaped = self._checked(design, sql)
            if design.typed:
                probe, not_null = ddl.create_table(design, "postgres", name="pg_temp.conveyor_shape"), True
            else:
                probe, not_null = f"CREATE TEMPORARY TABLE conveyor_shape AS\n{shaped}\nWITH NO DATA", False
            if self._shape_matches(design, probe, not_null=not_null):
                target = qualified(design.name)
                with self._transaction(design) as con:
                    con.execute(f"DELETE FROM {target}")
                    rows = con.execute(f"INSERT INTO {target}\n{shaped}").rowcount
                    for statement in ddl.comments(design):
                        con.execute(statement)
                    analyze_table(con, design.name)
                return max(rows, 0)
        self.drop(design.name)
        return self.create_table(design, sql)

    def create_view(self, design: TableDesign, sql: str) -> None:
        kind = self._kind(design.name)
        if kind == "view":
            sql = self._checked(design, sql)
            if self._same_view(design, sql):
                with self._transaction(design) as con:
                    for statement in ddl.comments(design, view=True):
                        con.execute(statement)
                return
            try:
                with self._transaction(design) as con:
                    con.execute(f"CREATE OR REPLACE VIEW {qualified(design.name)} AS\n{sql}")
                    for statement in ddl.comments(design, view=True):
                        con.execute(statement)
            except LoadError:
                pass  # other columns than before: drop and create
            else:
                self._restore_views()
                return
        if kind is not None:
            self.drop(design.name)
        self._schema_of(design)
        super().create_view(design, sql)
        self._created(design)

    def _same_view(self, design: TableDesign, sql: str) -> bool:
        """Whether the published view already has this definition (then it is not replaced)."""
        same = False
        try:
            with self._transaction(design) as con:
                con.execute(f"CREATE TEMPORARY VIEW conveyor_probe AS\n{sql}")
                con.execute("SET LOCAL search_path = pg_catalog")  # both printed schema-qualified
                row = con.execute(
                    "SELECT pg_get_viewdef('pg_temp.conveyor_probe'::regclass) = pg_get_viewdef(%s::regclass)",
                    (qualified(design.name),),
                ).fetchone()
                same = bool(row and row[0])
                raise psycopg.Rollback()
        except LoadError:
            return False
        return same

    def drop(self, name: str) -> None:
        """Drop a relation, and the views that read it (recreated once it exists again)."""
        kind = self._kind(name)
        if kind is None:
            return
        if kind not in ("table", "view"):
            raise LoadError(f'"{name}" is a relation of kind "{kind}" in PostgreSQL; drop it yourself first.')
        self._claim(name)
        con = self._connection()
        try:
            with con.transaction() as probe:
                con.execute("SET LOCAL search_path = pg_catalog")  # view definitions schema-qualified
                views = views_reading(con, name)
                grants = grants_of(con, name)
                raise psycopg.Rollback(probe)
            with con.transaction():
                if views:
                    con.execute("DROP VIEW " + ", ".join(qualified(f"{v.schema}.{v.name}") for v in views))
                con.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} {qualified(name)}")
        except psycopg.Error as exc:
            raise LoadError(f'dropping "{name}" failed in PostgreSQL: {error_message(exc)}') from None
        for view in views:
            self._pending.setdefault(f"{view.schema}.{view.name}", view)
        self._acl[name] = grants

    def _created(self, design: TableDesign) -> None:
        """A relation was (re)created: give it its grants, then recreate the views waiting for it."""
        name = design.name
        pending = self._pending.pop(name, None)
        grants = self._acl.pop(name, []) + (pending.grants if pending else [])
        target = qualified(name)
        with self._transaction(design, "granting privileges on") as con:
            for privilege, grantee, grantable in grants:
                role = "PUBLIC" if grantee == "PUBLIC" else quote(grantee)
                con.execute(f"GRANT {privilege} ON {target} TO {role}" + (" WITH GRANT OPTION" if grantable else ""))
            for role in self.warehouse.readers:
                con.execute(f"GRANT SELECT ON {target} TO {quote(role)}")
            for role in self.warehouse.writers:
                con.execute(f"GRANT ALL ON {target} TO {quote(role)}")
        self._restore_views()

    def _restore_views(self) -> None:
        """Recreate every waiting view that binds now (each in a savepoint: one that fails waits on)."""
        con = self._connection()
        progress = True
        while self._pending and progress:
            progress = False
            for key, view in list(self._pending.items()):
                try:
                    with con.transaction():
                        view.recreate(con)
                except (WarehouseError, psycopg.Error):
                    continue
                del self._pending[key]
                progress = True

    # ------------------------------------------------------------------ commit / rollback

    def publish(self) -> None:
        if self._finished:
            raise WarehouseError("this transaction is already committed or rolled back.")
        try:
            self._restore_views()
            if self._pending and self.atomic:
                names = ", ".join(self._pending)
                raise WarehouseError(
                    f"view(s) {names} read relations that were replaced and no longer work with the new version.",
                    hint="Change or drop those views, then try again.",
                )
            for key, view in self._pending.items():
                # upgrade: what they read failed to build (or changed); each step has committed
                log.warning(
                    "view %s was dropped with a relation it reads and cannot be created again; it was: %s",
                    key,
                    view.definition,
                )
            if self.atomic:
                self.con.commit()
        except psycopg.Error as exc:
            self.abort()
            raise WarehouseError(
                f'committing to the PostgreSQL warehouse "{self.warehouse.name}" failed: {error_message(exc)}'
            ) from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._release()

    def suspend(self) -> None:
        self.abort()

    def abort(self) -> None:
        con = getattr(self, "con", None)
        if con is not None and not con.closed and self.atomic:
            with suppress(psycopg.Error):
                con.rollback()
        self._finished = True
        self._release()
