"""Upstream engines, looked up by the ``type`` of a source in conveyor.yaml."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from conveyor.sources.base import Source

# type -> "module:Class"; imported lazily so a missing driver only matters when used
ENGINES = {
    "sqlite": "conveyor.sources.sqlite:SqliteSource",
    "postgres": "conveyor.sources.postgres:PostgresSource",
    "mysql": "conveyor.sources.mysql:MySQLSource",
    "lake": "conveyor.sources.lake:LakeSource",
}


def open_source(source_type: str, name: str, dsn: str, *, root: Path | None = None) -> Source:
    """Create the source object for a configured source (the DSN already resolved)."""
    module, _, cls = ENGINES[source_type].partition(":")
    engine: type[Source] = getattr(import_module(module), cls)
    if source_type in ("sqlite", "lake") and root is not None:
        path = Path(dsn.removeprefix("sqlite:///").removeprefix("lake://"))
        dsn = str(path if path.is_absolute() else root / path)
    return engine(name, dsn)
