"""Checks of how source tables are extracted: the job type can run and has what it needs.

A source's default ``job_type`` is reported once, at its line in conveyor.yaml; a design
that overrides it is reported at its own ``extract.job_type``.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import string
from collections.abc import Iterator, Sequence
from functools import cache

from conveyor.errors import Location
from conveyor.extract.jobs import JOB_TYPES
from conveyor.project import Project, Relation
from conveyor.validate.problems import Problem, problem

#: placeholders an extract.command template may use (see conveyor.extract.runners.CommandRunner)
COMMAND_FIELDS = ("job_file", "folder", "relation", "source", "table")


@cache
def importable(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _submits(project: Project, relation: Relation) -> bool:
    """Whether the table's Spark application goes to a submit command (a cluster), which needs no local
    pyspark: ``CONVEYOR_SPARK_SUBMIT`` or the source's ``spark.submit`` (as the spark runner decides)."""
    spark = project.source_config(relation.source or "").spark
    return bool(os.environ.get("CONVEYOR_SPARK_SUBMIT") or (spark is not None and spark.submit))


def _where(project: Project, relation: Relation) -> tuple[Location, str | None]:
    """Where the job type of a relation is set: its design, or its source (then the relation is None)."""
    if relation.design.extract.job_type is not None:
        return relation.location("extract", "job_type"), relation.name
    return project.settings_doc.location(("sources", relation.source or "", "job_type")), None


def job_type_of(project: Project, relation: Relation) -> str:
    assert relation.source is not None
    return relation.design.extract.job_type or project.source_config(relation.source).job_type


def job_types(project: Project, relations: Sequence[Relation]) -> Iterator[Problem]:
    """Every selected source table's job type can run here; each problem is reported once per place."""
    seen: set[tuple[str, int | None]] = set()
    for relation in relations:
        if relation.kind != "source" or relation.source is None:
            continue
        kind = job_type_of(project, relation)
        where, owner = _where(project, relation)
        key = (str(where.path), where.line)
        if key in seen:
            continue
        if kind == "spark" and not _submits(project, relation) and not importable("pyspark"):
            seen.add(key)
            whose = f'"{relation.name}"' if owner else f'source "{relation.source}"'
            yield problem(
                "spark-unavailable",
                f"{whose} uses job_type spark, but pyspark cannot be imported.",
                location=where,
                hint="Install it with `pip install conveyor[spark]` (it also needs Java), or use job_type arrow.",
                relation=owner,
            )
        elif kind not in JOB_TYPES:
            seen.add(key)
            yield problem(
                "job-type-unavailable",
                f'job type "{kind}" is not available in this version of Conveyor.',
                location=where,
                hint=f"Available: {', '.join(sorted(JOB_TYPES))}.",
                relation=owner,
            )
        yield from _command(relation, kind)


def _command(relation: Relation, kind: str) -> Iterator[Problem]:
    command = relation.design.extract.command
    if kind == "command" and not command:
        loc = ("extract", "job_type") if relation.design.extract.job_type else ("name",)
        yield problem(
            "command-missing",
            f'"{relation.name}" has job_type command but no extract.command.',
            location=relation.location(*loc),
            hint="Add extract.command, e.g. `my-extractor --job {job_file} --out {folder}`.",
            relation=relation.name,
        )
    elif kind != "command" and command:
        yield problem(
            "command-ignored",
            f'"{relation.name}" has extract.command, but its job type is {kind}, so the command never runs.',
            location=relation.location("extract", "command"),
            hint="Set extract.job_type: command, or remove extract.command.",
            relation=relation.name,
        )
    if command:
        unknown = _unknown_fields(command)
        if unknown is not None:
            yield problem(
                "bad-command-template",
                f'the extract.command of "{relation.name}" is not a valid template: {unknown}.',
                location=relation.location("extract", "command"),
                hint="Use {" + "}, {".join(COMMAND_FIELDS) + "}; write {{ and }} for literal braces.",
                relation=relation.name,
            )


def _unknown_fields(template: str) -> str | None:
    """Why the template cannot be formatted, or None when it can."""
    try:
        shlex.split(template)
    except ValueError as exc:
        return str(exc).lower()
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return str(exc)
    for name in fields:
        base = name.split(".")[0].split("[")[0]
        if base not in COMMAND_FIELDS:
            return f'unknown placeholder "{{{name}}}"'
    return None
