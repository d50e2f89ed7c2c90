"""The warehouse file: where a build writes, how a published file is checkpointed and identified,
shared connections to it, and its relations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import duckdb
import tenacity

from conveyor.errors import WarehouseError
from conveyor.warehouse.base import literal

INTERNAL_SCHEMAS = ("information_schema", "pg_catalog")


def staging_path(target: Path, run_id: str) -> Path:
    """The private file a run builds into, beside the warehouse.

    DuckDB names the catalog after the file name up to its first dot; this one never equals
    a schema name, which would make "schema.table" ambiguous while building.
    """
    return target.with_name(f".conveyor_build_{run_id}.{target.name}.building")


def checkpoint_published(target: Path) -> None:
    """Fold a WAL left beside the published file into it before the file is replaced.

    DuckDB replays ``<file>.wal`` when it opens ``<file>``; a WAL of the old file must never
    be replayed onto the new one.
    """
    wal = Path(f"{target}.wal")
    if not wal.exists():
        return
    try:
        with duckdb.connect(str(target)) as con:
            con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        raise WarehouseError(
            f"{wal} holds changes not yet written into {target.name}, and checkpointing it failed: {exc}",
            hint="Close programs that have the warehouse open for writing, then load again.",
        ) from None
    if wal.exists():
        raise WarehouseError(f"{wal} is still there after a checkpoint.", hint="Close programs using the warehouse.")


@tenacity.retry(
    retry=tenacity.retry_if_exception(lambda exc: "file handle conflict" in str(exc)),
    wait=tenacity.wait_random(0.01, 0.05),
    stop=tenacity.stop_after_delay(5),
    reraise=True,
)
def connect_shared(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Connect to a database file another thread of this process may be opening at the same moment.

    DuckDB shares one open database per file within a process; two threads connecting at
    once can collide ("Unique file handle conflict"), which passes when retried.
    """
    return duckdb.connect(str(path), read_only=read_only)


def duckdb_path(dsn: str, root: Path | None = None) -> Path:
    """The file of a DuckDB DSN (``path``, ``duckdb:///path``), relative to ``root``."""
    path = Path(dsn.removeprefix("duckdb:///").removeprefix("duckdb://"))
    return path if path.is_absolute() or root is None else root / path


FileIdentity = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


def file_identity(target: Path) -> FileIdentity:
    """(inode, size, mtime in ns) of the warehouse file and of its WAL (None when missing).

    Any write to the file, in place or by a rename over it, changes one of them.
    """

    def stat(path: Path) -> tuple[int, int, int] | None:
        try:
            found = path.stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    return stat(target), stat(Path(f"{target}.wal"))


def relations_in(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, str]:
    filter_db = f"database_name = {literal(database)} AND " if database else ""
    found: dict[str, str] = {}
    for schema, name in con.execute(
        f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {filter_db}NOT internal"
    ).fetchall():
        found[f"{schema}.{name}"] = "table"
    for schema, name in con.execute(
        f"SELECT schema_name, view_name FROM duckdb_views() WHERE {filter_db}NOT internal"
    ).fetchall():
        if schema not in INTERNAL_SCHEMAS:
            found[f"{schema}.{name}"] = "view"
    return found


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WarehouseFile(Protocol):
    """What an in-place transaction needs of the warehouse that started it."""

    path: Path

    def describe(self) -> str: ...
