"""The extract config manager: an event plus the project become one job per table.

This is step 2 of the orchestration (docs/extract.md). A job carries everything a runner needs and is
plain JSON, so the ``command`` job type can hand it to another program and the
``spark`` job type to a Spark application.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import UserError, did_you_mean
from conveyor.project import Project, Relation

#: every job type this version can run (``conveyor.extract.runners.RUNNERS`` has one runner module each);
#: named here so that checking a design does not import the runners and pyarrow
JOB_TYPES = ("arrow", "command", "spark")


@dataclass(frozen=True)
class ExtractEvent:
    """What to extract: ``{"source": ..., "tables": [...] or "*", "reingest": false}``."""

    source: str | None = None
    tables: tuple[str, ...] | None = None
    reingest: bool = False

    @classmethod
    def parse(cls, text: str, origin: str = "the event") -> ExtractEvent:
        """Parse an event from JSON text; malformed events are user errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
        if not isinstance(data, dict):
            raise UserError(f'{origin} must be a JSON object like {{"source": "shop", "tables": "*"}}.')
        unknown = set(data) - {"source", "tables", "reingest"}
        if unknown:
            key = sorted(unknown)[0]
            raise UserError(
                f'{origin} has an unknown key "{key}".' + did_you_mean(key, ["source", "tables", "reingest"])
            )
        tables = data.get("tables", "*")
        if tables != "*" and not (isinstance(tables, list) and all(isinstance(t, str) for t in tables)):
            raise UserError(f'{origin}: "tables" must be "*" or a list of table names.')
        return cls(data.get("source"), None if tables == "*" else tuple(tables), bool(data.get("reingest", False)))

    @classmethod
    def read(cls, path: str) -> ExtractEvent:
        """Read an event from a file, or from standard input when ``path`` is ``-``."""
        if path == "-":
            return cls.parse(sys.stdin.read(), "the event on standard input")
        try:
            return cls.parse(Path(path).read_text(encoding="utf-8"), f"the event file {path}")
        except OSError as exc:
            raise UserError(f"cannot read the event file {path}: {exc.strerror}.") from None


@dataclass(frozen=True)
class ExtractJob:
    """One table's extract: the arguments of whichever runner its job type picks."""

    relation: str
    source: str
    source_type: str
    upstream_schema: str | None
    upstream_table: str
    columns: tuple[tuple[str, str], ...]
    job_type: str = "arrow"
    condition: str | None = None
    split_by: str | None = None
    partitions: int | None = None
    incremental_cursor: str | None = None
    incremental_lag: str | int | None = None
    primary_key: tuple[str, ...] = ()
    command: str | None = None
    full: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    zero_dates: str = "null"
    """The source's zero_dates setting (MySQL zero dates read as NULL, or an error)."""

    @property
    def upstream_name(self) -> str:
        """The upstream table as ``<schema>.<table>``.

        Lakes written before relations owned their folders kept extracts under this name;
        the lake still reads this relation's manifests there (``legacy``), never writes there.
        """
        return f"{self.upstream_schema}.{self.upstream_table}" if self.upstream_schema else self.upstream_table

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def plan(
    project: Project, relations: Sequence[Relation], event: ExtractEvent | None = None, *, full: bool = False
) -> list[ExtractJob]:
    """Turn selected source relations (narrowed by an event) into extract jobs."""
    chosen = [r for r in relations if r.kind == "source"]
    if event is not None:
        chosen = _apply_event(project, chosen, event)
        full = full or event.reingest
    return [_job(project, r, full) for r in chosen]


def _apply_event(project: Project, relations: list[Relation], event: ExtractEvent) -> list[Relation]:
    if event.source is not None:
        if event.source not in project.settings.sources:
            known = list(project.settings.sources)
            raise UserError(
                f'the event names source "{event.source}", which is not configured.' + did_you_mean(event.source, known)
            )
        relations = [r for r in relations if r.source == event.source]
    if event.tables is None:
        return relations
    # an upstream name selects every design over that table (two designs may read one table)
    by_name: dict[str, list[Relation]] = {}
    for relation in relations:
        schema, table = project.upstream_table(relation)
        for alias in dict.fromkeys((relation.name, relation.table, f"{schema}.{table}" if schema else table)):
            by_name.setdefault(alias, []).append(relation)
    chosen: list[Relation] = []
    for name in event.tables:
        if name not in by_name:
            raise UserError(f'the event names table "{name}", which has no design.' + did_you_mean(name, by_name))
        exact = [r for r in by_name[name] if r.name == name]
        chosen.extend(r for r in exact or by_name[name] if r not in chosen)
    return chosen


def _job(project: Project, relation: Relation, full: bool) -> ExtractJob:
    design = relation.design
    assert relation.source is not None
    source = project.source_config(relation.source)
    schema, table = project.upstream_table(relation)
    incremental = design.extract.incremental
    return ExtractJob(
        relation=relation.name,
        source=relation.source,
        source_type=source.type,
        upstream_schema=schema,
        upstream_table=table,
        columns=tuple((c.name, str(c.sql_type)) for c in design.loaded_columns),
        job_type=design.extract.job_type or source.job_type,
        condition=design.extract.condition,
        split_by=design.extract.split_by,
        partitions=design.extract.partitions,
        incremental_cursor=incremental.cursor if incremental else None,
        incremental_lag=incremental.lag if incremental else None,
        primary_key=tuple(design.constraints.primary_key),
        command=design.extract.command,
        full=full,
        options={"spark": source.spark.model_dump(exclude_none=True)} if source.spark else {},
        zero_dates=source.zero_dates,
    )
