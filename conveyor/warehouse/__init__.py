"""Warehouse engines, looked up by the ``type`` of an environment in conveyor.yaml."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, cast

from conveyor.config.settings import EnvironmentConfig
from conveyor.design.types import SqlType
from conveyor.warehouse.base import Warehouse

ENGINES = {
    "duckdb": "conveyor.warehouse.duckdb.warehouse:DuckDBWarehouse",
    "postgres": "conveyor.warehouse.postgres.warehouse:PostgresWarehouse",
    "redshift": "conveyor.warehouse.redshift.warehouse:RedshiftWarehouse",
}


def engine_class(engine_type: str) -> type[Warehouse]:
    """The warehouse class of an engine type (``duckdb``, ``postgres``, ``redshift``; each is also its dialect).

    Raises:
        UserError: no such engine.
    """
    if engine_type not in ENGINES:
        from conveyor.errors import UserError

        raise UserError(f'warehouse type "{engine_type}" is not available yet in this version of Conveyor.')
    module, _, cls = ENGINES[engine_type].partition(":")
    engine: type[Warehouse] = getattr(import_module(module), cls)
    return engine


def render_type(sql_type: SqlType, dialect: str, *, column: str = "", design: str = "") -> str:
    """Spell a design type for a warehouse dialect, through its engine class (``Warehouse.render_type``)."""
    return engine_class(dialect).render_type(sql_type, column=column, design=design)


def open_warehouse(
    engine_type: str, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None
) -> Warehouse:
    """Create the warehouse object of an environment (the DSN already resolved).

    Every engine's constructor takes ``(name, dsn, *, root, config)``.
    """
    engine: Any = engine_class(engine_type)  # every engine's constructor takes (name, dsn, *, root, config)
    return cast(Warehouse, engine(name, dsn, root=root, config=config))
