"""Moving a project to Conveyor from another tool: ``import_dbt``."""

from __future__ import annotations

from pathlib import Path

from conveyor.dbtimport import ImportReport
from conveyor.dbtimport import import_dbt as _import_dbt


def import_dbt(
    path: Path | str, into: Path | str = ".", schema: str | None = None, *, dry_run: bool = False, force: bool = False
) -> ImportReport:
    """Convert the dbt project at ``path`` into Conveyor designs, SQL and tests in ``into`` (``conveyor import-dbt``).

    ``schema`` is where models without a schema config go (default: the dbt project's name).
    Nothing is written with ``dry_run``; existing files are overwritten only with ``force``.
    The report lists what converted and, with file:line and why, what did not.
    """
    return _import_dbt(path, into, schema, dry_run=dry_run, force=force)
