"""What PostgreSQL's catalog says: schema names Conveyor uses, search paths, table columns, the views that
depend on a relation, grants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.errors

from conveyor.errors import LoadError, WarehouseError
from conveyor.warehouse.base import (
    literal,
    qualified,
    quote,
)
from conveyor.warehouse.postgres.binary_layout import PgColumn
from conveyor.warehouse.postgres.connect import error_message

STAGING = "$staging"
"""Suffix of the schema a rebuilt schema is built in."""
BACKUP = "$backup"
"""Suffix of the previous version of a schema after publishing (kept when ``keep_backup``)."""
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1 bytes)


def set_search_path(con: psycopg.Connection[Any], schemas: Sequence[str]) -> str | None:
    """Search ``schemas`` first, then the session's own path, until the transaction ends.

    Returns the path it replaced (None when ``schemas`` is empty and nothing changed). A
    transaction that goes on after a savepoint (an atomic update) sets it back with it.
    """
    if not schemas:
        return None
    row = con.execute("SELECT current_setting('search_path')").fetchone()
    previous = str(row[0]) if row else ""
    path = ", ".join([*(quote(s) for s in schemas), *([previous] if previous.strip() else [])])
    con.execute("SELECT set_config('search_path', %s, true)", (path,))
    return previous


def table_columns(con: psycopg.Connection[Any], table: str) -> list[PgColumn]:
    """The columns of ``table`` ("schema.table") with their catalog types, in order."""
    rows = con.execute(
        """
        SELECT a.attname, t.typname, a.atttypmod, e.typname, t.typelem::int
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (qualified(table),),
    ).fetchall()
    return [PgColumn(name, typ, mod, elem, elem_oid if elem else 0) for name, typ, mod, elem, elem_oid in rows]


class DependentView:
    """A view outside the rebuilt schemas that reads one of their relations: recreated on publish."""

    def __init__(self, schema: str, name: str, definition: str, options: list[str] | None, owner: str):
        self.schema, self.name, self.definition, self.options, self.owner = schema, name, definition, options, owner
        self.comment: str | None = None
        self.column_comments: list[tuple[str, str]] = []
        self.grants: list[tuple[str, str, bool]] = []

    def recreate(self, con: psycopg.Connection[Any]) -> None:
        target = qualified(f"{self.schema}.{self.name}")
        with_options = f" WITH ({', '.join(self.options)})" if self.options else ""
        try:
            con.execute(f"CREATE VIEW {target}{with_options} AS {self.definition.rstrip().rstrip(';')}")
        except psycopg.Error as exc:
            raise WarehouseError(
                f'the view "{self.schema}.{self.name}" reads a rebuilt relation and no longer works with the '
                f"new version: {error_message(exc)}",
                hint="Change or drop that view, then load again.",
            ) from None
        if self.comment is not None:
            con.execute(f"COMMENT ON VIEW {target} IS {literal(self.comment)}")
        for column, comment in self.column_comments:
            con.execute(f"COMMENT ON COLUMN {target}.{quote(column)} IS {literal(comment)}")
        for privilege, grantee, grantable in self.grants:
            role = "PUBLIC" if grantee == "PUBLIC" else quote(grantee)
            con.execute(f"GRANT {privilege} ON {target} TO {role}" + (" WITH GRANT OPTION" if grantable else ""))
        current = con.execute("SELECT current_user").fetchone()
        if current and self.owner != current[0]:
            con.execute(f"ALTER VIEW {target} OWNER TO {quote(self.owner)}")


def dependent_views(con: psycopg.Connection[Any], schemas: list[str]) -> list[DependentView]:
    """Views outside ``schemas`` that read their relations, directly or through other such views.

    Returned in an order they can be created in. Materialized views and foreign keys that
    reference a rebuilt table are refused: they cannot be recreated safely.
    """
    if not schemas:
        return []
    outside = (
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(all)s)"
    )
    params = {
        "schemas": schemas,
        "all": [*schemas, *(s + STAGING for s in schemas), *(s + BACKUP for s in schemas)],
    }
    rows = con.execute(
        f"""
        WITH RECURSIVE rebuilt AS (
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY(%(schemas)s)
        ), reader(oid, depth) AS (
            SELECT DISTINCT r.ev_class, 1
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid IN (SELECT oid FROM rebuilt) AND r.ev_class NOT IN ({outside})
            UNION
            SELECT r.ev_class, reader.depth + 1
            FROM reader
            JOIN pg_depend d ON d.refobjid = reader.oid AND d.refclassid = 'pg_class'::regclass
                            AND d.classid = 'pg_rewrite'::regclass
            JOIN pg_rewrite r ON r.oid = d.objid
            WHERE r.ev_class <> reader.oid AND r.ev_class NOT IN ({outside})
        )
        SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), c.reloptions,
               pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), max(reader.depth) AS depth
        FROM reader JOIN pg_class c ON c.oid = reader.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.reloptions, c.relowner
        ORDER BY depth, c.oid
        """,
        params,
    ).fetchall()
    for _oid, schema, name, kind, *_ in rows:
        if kind != "v":
            raise WarehouseError(
                f'the materialized view "{schema}.{name}" reads a relation of a schema this load replaces '
                f"({', '.join(schemas)}); it would keep reading the old version.",
                hint="Make it a view or a Conveyor relation, or drop it, then load again.",
            )
    foreign = con.execute(
        """
        SELECT conrelid::regclass::text, conname, confrelid::regclass::text
        FROM pg_constraint c
        WHERE c.contype = 'f'
          AND c.confrelid IN (SELECT c2.oid FROM pg_class c2 JOIN pg_namespace n ON n.oid = c2.relnamespace
                              WHERE n.nspname = ANY(%(schemas)s))
          AND c.conrelid NOT IN (SELECT c3.oid FROM pg_class c3 JOIN pg_namespace n ON n.oid = c3.relnamespace
                                 WHERE n.nspname = ANY(%(schemas)s))
        """,
        {"schemas": schemas},
    ).fetchone()
    if foreign:
        raise WarehouseError(
            f"the foreign key {foreign[1]} of table {foreign[0]} references {foreign[2]}, which this load replaces; "
            "it would keep referencing the old version.",
            hint="Drop the foreign key (Conveyor checks keys itself), then load again.",
        )
    return _describe_views(con, [row[:8] for row in rows])


def _describe_views(con: psycopg.Connection[Any], rows: Sequence[Sequence[Any]]) -> list[DependentView]:
    """DependentViews from rows of (oid, schema, name, kind, definition, options, owner, comment)."""
    views = []
    for oid, schema, name, _kind, definition, options, owner, comment in rows:
        view = DependentView(schema, name, definition, options, owner)
        view.comment = comment
        view.column_comments = [
            (column, text)
            for column, text in con.execute(
                "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
                "WHERE attrelid = %s AND attnum > 0 AND col_description(attrelid, attnum) IS NOT NULL "
                "ORDER BY attnum",
                (oid,),
            )
        ]
        view.grants = [
            (privilege, grantee, grantable)
            for privilege, grantee, grantable in con.execute(
                "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
                "a.is_grantable FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %s AND a.grantee <> c.relowner",
                (oid,),
            )
        ]
        views.append(view)
    return views


def table_shape(con: psycopg.Connection[Any], table: str, not_null: bool) -> list[tuple[Any, ...]]:
    """(name, type[, NOT NULL]) of every column of ``table``, in order."""
    rows = con.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (qualified(table),),
    ).fetchall()
    return [tuple(row) if not_null else tuple(row[:2]) for row in rows]


def grants_of(con: psycopg.Connection[Any], name: str) -> list[tuple[str, str, bool]]:
    """(privilege, grantee or PUBLIC, grantable) a relation has, besides its owner's."""
    return [
        (privilege, grantee, grantable)
        for privilege, grantee, grantable in con.execute(
            "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
            "a.is_grantable FROM pg_class c, aclexplode(c.relacl) a "
            "WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner",
            (qualified(name),),
        )
    ]


def views_reading(con: psycopg.Connection[Any], name: str) -> list[DependentView]:
    """Views that read relation ``name``, directly or through each other, in an order they can be created in.

    Materialized views among them are refused: they cannot be recreated safely.
    """
    rows = con.execute(
        """
        WITH RECURSIVE reader(oid, depth) AS (
            SELECT DISTINCT r.ev_class, 1
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid = to_regclass(%(name)s) AND r.ev_class <> d.refobjid
            UNION
            SELECT r.ev_class, reader.depth + 1
            FROM reader
            JOIN pg_depend d ON d.refobjid = reader.oid AND d.refclassid = 'pg_class'::regclass
                            AND d.classid = 'pg_rewrite'::regclass
            JOIN pg_rewrite r ON r.oid = d.objid
            WHERE r.ev_class <> reader.oid
        )
        SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), c.reloptions,
               pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), max(reader.depth) AS depth
        FROM reader JOIN pg_class c ON c.oid = reader.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.reloptions, c.relowner
        ORDER BY depth, c.oid
        """,
        {"name": qualified(name)},
    ).fetchall()
    for _oid, schema, view, kind, *_ in rows:
        if kind != "v":
            raise LoadError(
                f'the materialized view "{schema}.{view}" reads "{name}", which must be dropped and created again.',
                hint="Make it a view or a Conveyor relation, or drop it, then try again.",
            )
    return _describe_views(con, [row[:8] for row in rows])


def name_session(con: psycopg.Connection[Any], doing: str) -> None:
    """Add what this session does (``load run ID``) to its application_name.

    The session that holds a schema's lock is found through ``pg_stat_activity``; its name is
    how a refused or waiting command names the run it met.
    """
    row = con.execute("SELECT current_setting('application_name')").fetchone()
    current = str(row[0]) if row and row[0] else "conveyor"
    con.execute("SELECT set_config('application_name', %s, false)", (f"{current} {doing}"[:MAX_IDENTIFIER],))
