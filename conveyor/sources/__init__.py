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


def open_source(source_type: str, name: str, dsn: str, *, root: Path | None = None, zero_dates: str = "null") -> Source:
    """Create the source object for a configured source (the DSN already resolved).

    ``zero_dates`` is the source's ``zero_dates`` setting (what a MySQL zero date reads as).
    """
    module, _, cls = ENGINES[source_type].partition(":")
    engine: type[Source] = getattr(import_module(module), cls)
    if source_type in ("sqlite", "lake") and root is not None:
        path = Path(dsn.removeprefix("sqlite:///").removeprefix("lake://"))
        dsn = str(path if path.is_absolute() else root / path)
    source = engine(name, dsn)
    source.zero_dates = zero_dates
    return source
