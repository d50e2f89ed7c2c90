"""Checks of declared dependencies against what the SQL reads.

Missing dependencies, tables outside the managed schemas and cycles are found while the
project loads (:mod:`conveyor.project`); this adds the ``depends_on`` entries that are not
needed.
"""

from __future__ import annotations

from collections.abc import Iterator

from conveyor.project import Project, Relation
from conveyor.validate.problems import Problem, problem


def depends_on(project: Project, relation: Relation) -> Iterator[Problem]:
    """``depends_on`` is for dependencies the SQL cannot show: flag entries the SQL reads, or does not need."""
    if relation.kind == "source" or relation.references is None or relation.unparsed is not None:
        return  # source tables are checked by the design checks; SQL that does not parse shows nothing
    for index, dep in enumerate(relation.design.depends_on):
        if dep not in project.relations:
            continue  # a missing dependency, reported while loading
        if dep in relation.sql_dependencies:
            yield problem(
                "redundant-dependency",
                f'"{relation.name}" lists "{dep}" in depends_on, but its SQL reads it already.',
                location=relation.location("depends_on", index),
                hint="Remove it from depends_on; dependencies are inferred from the SQL.",
                relation=relation.name,
            )
        else:
            yield problem(
                "unneeded-dependency",
                f'"{relation.name}" lists "{dep}" in depends_on, but its SQL does not read it.',
                location=relation.location("depends_on", index),
                hint="Remove it, unless the query reads it in a way the SQL cannot show (e.g. through a function); "
                "then keep it and ignore this warning.",
                relation=relation.name,
            )
