"""Seeds: each value of a seed's CSV file parsed as its design says, with file:line at the first problem.

A seed (a table of a ``type: seed`` source, docs/seeds.md) is a file of the project, so
validate reads it whole instead of comparing catalogs: the header must name the design's
columns (any order; skipped columns may be left out), every value must parse exactly as its
column's type, and a not_null column must hold no empty field. The preflight of ``extract``,
``load`` and ``run`` runs the same check, so a bad CSV fails with exit code 2 before anything
is written.
"""

from __future__ import annotations

from collections.abc import Iterator

from conveyor.errors import ConveyorError
from conveyor.project import Project, Relation
from conveyor.sources import PROJECT_FILE_TYPES
from conveyor.validate.problems import Problem, from_error, problem


def seed_file(project: Project, relation: Relation) -> tuple[str, str] | None:
    """``(path, display)`` of a seed relation's CSV file; None when the relation is no seed."""
    if relation.kind != "source" or relation.source is None:
        return None
    config = project.settings.sources.get(relation.source)
    if config is None or config.type not in PROJECT_FILE_TYPES:
        return None
    from conveyor.sources.seed import seed_path

    schema, table = project.upstream_table(relation)
    path = seed_path(project.path(config.dsn), schema, table)
    try:
        display = str(path.relative_to(project.root))
    except ValueError:
        display = str(path)
    return str(path), display


def _extract_settings(project: Project, relation: Relation) -> Iterator[Problem]:
    """A seed is read whole by the arrow job type: no other job type, no filter, increment or split."""
    extract = relation.design.extract
    config = project.settings.sources[relation.source or ""]
    if (extract.job_type or config.job_type) != "arrow":
        where = (
            relation.location("extract", "job_type")
            if extract.job_type
            else project.settings_doc.location(("sources", relation.source or "", "job_type"))
        )
        yield problem(
            "seed-extract",
            f'the seed "{relation.name}" has job type {extract.job_type or config.job_type}; seeds are read by the '
            "arrow job type only.",
            location=where,
            hint="Remove job_type (or set it to arrow).",
            relation=relation.name,
        )
    for key in ("condition", "incremental", "split_by", "partitions", "command"):
        if getattr(extract, key) is not None:
            yield problem(
                "seed-extract",
                f'the seed "{relation.name}" sets extract.{key}; a seed is read whole, every time.',
                location=relation.location("extract", key),
                hint=f"Remove extract.{key}.",
                relation=relation.name,
            )


def seed_values(project: Project, relation: Relation) -> Iterator[Problem]:
    """The first problem of a seed's CSV file against its design (header, record shape, values)."""
    found = seed_file(project, relation)
    if found is None:
        return
    from pathlib import Path

    from conveyor.design.types import parse_type
    from conveyor.sources.seedcsv import SeedColumn, read_seed

    path, display = found
    yield from _extract_settings(project, relation)
    try:
        columns = [
            SeedColumn(c.name, parse_type(c.type), c.not_null or c.name in relation.design.constraints.primary_key)
            for c in relation.design.loaded_columns
            if c.type is not None
        ]
    except ValueError:
        return  # a bad type is reported by the design's own checks
    try:
        read_seed(Path(path), display, columns)
    except ConveyorError as exc:
        yield from_error(exc, relation=relation.name, check="designs")
