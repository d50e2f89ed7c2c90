"""Warehouse engines, looked up by the ``type`` of an environment in conveyor.yaml."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from conveyor.config.settings import EnvironmentConfig
from conveyor.warehouse.base import Warehouse

ENGINES = {
    "duckdb": "conveyor.warehouse.duckdb:DuckDBWarehouse",
    "postgres": "conveyor.warehouse.postgres:PostgresWarehouse",
    "redshift": "conveyor.warehouse.redshift:RedshiftWarehouse",
}


def engine_class(engine_type: str) -> type[Warehouse]:
    """The class of a warehouse type, for its capability flags (imports its driver)."""
    module, _, cls = ENGINES[engine_type].partition(":")
    engine: type[Warehouse] = getattr(import_module(module), cls)
    return engine


def open_warehouse(
    engine_type: str, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None
) -> Warehouse:
    """Create the warehouse object of an environment (the DSN already resolved).

    Every engine's constructor takes ``(name, dsn, *, root, config)``.
    """
    if engine_type not in ENGINES:
        from conveyor.errors import UserError

        raise UserError(f'warehouse type "{engine_type}" is not available yet in this version of Conveyor.')
    module, _, cls = ENGINES[engine_type].partition(":")
    engine = getattr(import_module(module), cls)
    return engine(name, dsn, root=root, config=config)
