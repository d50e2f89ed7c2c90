"""A project on disk, loaded and checked as a whole: ``model`` (:class:`Project`), ``relation``,
``loader`` (reading every file, collecting every problem) and ``cache`` (the parse cache)."""

from conveyor.project.cache import CACHE_FILE
from conveyor.project.loader import SETTINGS_FILE, is_external, own_catalogs
from conveyor.project.model import LoadResult, Project
from conveyor.project.relation import Relation, select_names

__all__ = [
    "CACHE_FILE",
    "SETTINGS_FILE",
    "LoadResult",
    "Project",
    "Relation",
    "is_external",
    "own_catalogs",
    "select_names",
]
