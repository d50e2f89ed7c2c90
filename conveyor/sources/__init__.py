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
    "seed": "conveyor.sources.seed:SeedSource",
}
#: source types whose tables are files of the project (their class sets ``FILES_IN_PROJECT``), named here
#: so that checking a design imports no engine
PROJECT_FILE_TYPES = ("seed",)
#: source types whose DSN is a file or folder path, relative to the project unless absolute
_PATH_DSN = {"sqlite": "sqlite:///", "lake": "lake://", "seed": ""}


def source_class(source_type: str) -> type[Source]:
    """The class of a source type (its module imported, which imports no driver until a read)."""
    module, _, cls = ENGINES[source_type].partition(":")
    engine: type[Source] = getattr(import_module(module), cls)
    return engine


def open_source(source_type: str, name: str, dsn: str, *, root: Path | None = None, zero_dates: str = "null") -> Source:
    """Create the source object for a configured source (the DSN already resolved).

    ``zero_dates`` is the source's ``zero_dates`` setting (what a MySQL zero date reads as).
    """
    engine = source_class(source_type)
    if source_type in _PATH_DSN and root is not None and not dsn.startswith("s3://"):  # a lake source on S3
        path = Path(dsn.removeprefix("sqlite:///").removeprefix("lake://"))
        dsn = str(path if path.is_absolute() else root / path)
    source = engine(name, dsn)
    source.zero_dates = zero_dates
    source.root = root
    return source
