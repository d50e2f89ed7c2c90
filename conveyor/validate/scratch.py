"""Throwaway warehouses for ``validate --with-warehouse``: built into, never published, then removed.

A scratch warehouse is an ordinary :class:`~conveyor.warehouse.base.Warehouse` of the
environment's engine pointed somewhere private, so the build uses the engine's real code
(DDL, staging names, SQL rewriting) and nothing the environment serves is touched:

* DuckDB: a file in a new temporary folder, deleted with the folder.
* PostgreSQL: a new database ``conveyor_validate_<random>`` on the environment's server
  (the user needs CREATEDB), dropped afterwards (``WITH (FORCE)``).

Each scratch also reports the output columns of a query with the warehouse's own type
names (:meth:`Scratch.describe`), which the generic build interface does not.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from conveyor.config.secrets import mask_dsn, scrub
from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.errors import ConveyorError, WarehouseError
from conveyor.graph.splice import limit_zero
from conveyor.warehouse import open_warehouse
from conveyor.warehouse.base import Build, Warehouse


class Scratch(ABC):
    """A private warehouse of the environment's engine."""

    warehouse: Warehouse

    @abstractmethod
    def describe(self, build: Build, design: TableDesign, sql: str) -> list[tuple[str, str]]:
        """(name, type) of every column ``sql`` produces, compiled by the warehouse, reading no row.

        Raises:
            WarehouseError: the warehouse rejects the statement (its message says why).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Remove the scratch warehouse."""


class DuckDBScratch(Scratch):
    """A DuckDB file in a temporary folder."""

    def __init__(self, name: str, config: EnvironmentConfig):
        self.folder = Path(tempfile.mkdtemp(prefix="conveyor-validate-"))
        dsn = str(self.folder / "scratch.duckdb")
        self.warehouse = open_warehouse("duckdb", name, dsn, config=config)

    def describe(self, build: Build, design: TableDesign, sql: str) -> list[tuple[str, str]]:
        from conveyor.warehouse.duckdb.sql import DuckDBRelations

        assert isinstance(build, DuckDBRelations)
        try:
            return build.output_columns(design, sql)
        except ConveyorError as exc:
            raise WarehouseError(summary(exc.message.partition(" in DuckDB: ")[2] or exc.message)) from None

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresScratch(Scratch):
    """A new database on the environment's PostgreSQL server."""

    def __init__(self, name: str, dsn: str):
        import psycopg
        from psycopg.conninfo import make_conninfo

        self.dsn = re.sub(r"^postgres(?:ql)?\+[A-Za-z0-9_]+://", "postgresql://", dsn)
        self.database = f"conveyor_validate_{secrets.token_hex(6)}"
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=15) as admin:
                admin.execute(f'CREATE DATABASE "{self.database}"'.encode())
        except psycopg.Error as exc:
            raise WarehouseError(
                f'cannot create a throwaway database on the PostgreSQL server of environment "{name}" '
                f"({mask_dsn(dsn)}): {scrub(summary(str(exc)))}",
                hint="validate --with-warehouse needs a user that may CREATE DATABASE on that server.",
            ) from None
        self.scratch_dsn = make_conninfo(self.dsn, dbname=self.database)
        self.warehouse = open_warehouse("postgres", name, self.scratch_dsn)
        self._con: Any = None

    def describe(self, build: Build, design: TableDesign, sql: str) -> list[tuple[str, str]]:
        import psycopg

        from conveyor.warehouse.postgres.catalog import set_search_path

        try:
            if self._con is None:
                self._con = psycopg.connect(self.scratch_dsn, autocommit=True)
            with self._con.transaction():
                set_search_path(self._con, build.bound_schemas())
                cursor = self._con.execute(limit_zero(sql, "postgres").encode())
        except psycopg.Error as exc:
            raise WarehouseError(summary(str(exc))) from None
        return [(column.name, column.type_display) for column in cursor.description or []]

    def close(self) -> None:
        import psycopg

        if self._con is not None:
            with suppress(psycopg.Error):
                self._con.close()
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=15) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'.encode())
        except psycopg.Error:
            pass  # nothing to do about it here; the name says what it is


def summary(text: str) -> str:
    """A warehouse error without the echo of the statement: the lines before ``LINE n:`` or a blank line."""
    kept: list[str] = []
    for line in text.strip().splitlines():
        if not line.strip() or line.startswith("LINE "):
            break
        kept.append(line.strip())
    return " ".join(kept) or text.strip()


#: engine type -> how to open a scratch copy of its warehouse (name, environment, resolved DSN)
SCRATCHES: dict[str, Callable[[str, EnvironmentConfig, str], Scratch]] = {
    "duckdb": lambda name, config, _dsn: DuckDBScratch(name, config),
    "postgres": lambda name, _config, dsn: PostgresScratch(name, dsn),
}
SUPPORTED = tuple(SCRATCHES)


@contextmanager
def scratch_warehouse(name: str, config: EnvironmentConfig, dsn: str) -> Iterator[Scratch]:
    """A scratch warehouse like environment ``name``, removed on exit.

    Raises:
        WarehouseError: the engine is not supported here, or the scratch cannot be created.
    """
    if config.type not in SUPPORTED:
        raise WarehouseError(
            f'validate --with-warehouse supports {" and ".join(SUPPORTED)} environments; "{name}" is {config.type}.',
            hint="Validate against a DuckDB or PostgreSQL environment instead.",
        )
    scratch = SCRATCHES[config.type](name, config, dsn)
    try:
        yield scratch
    finally:
        scratch.close()
