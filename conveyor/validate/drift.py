"""Upstream drift: each selected source table's live catalog against its design.

For every source with selected tables, the DSN is resolved and the source is opened once;
``list_tables`` proves it is reachable and tells which tables exist; each table is then
described (:meth:`~conveyor.sources.base.Source.describe`) and compared column by column,
then keys. Sources are checked in parallel, tables of one source one after the other (on
the source's catalog connection).

Severity follows one rule: an error is a difference the next extract or load fails on for
sure (the table or a loaded column is gone, a column's type cannot be read as the design's);
a warning is one that may make it fail when the data does something (a type whose values
may not fit, a not-null or key guarantee missing upstream) or that is additive (a new
column, a new NOT NULL, a new key); a type whose every value fits is a note (``info``). Every message suggests
``conveyor bootstrap --update``, which merges the upstream change into the design.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from conveyor.config.secrets import scrub
from conveyor.design.types import parse_type
from conveyor.design.upstream import join_upstream
from conveyor.errors import ConveyorError, did_you_mean
from conveyor.project import Project, Relation
from conveyor.sources import open_source
from conveyor.sources.base import ColumnInfo, Source, TableInfo
from conveyor.validate.problems import Problem, from_error, problem


@dataclass(frozen=True)
class Change:
    """One row of a drift table."""

    column: str
    change: str
    design: str
    upstream: str

    def details(self) -> dict[str, str]:
        return {"column": self.column, "change": self.change, "design": self.design, "upstream": self.upstream}


def check_sources(
    project: Project, relations: Sequence[Relation], *, jobs: int = 4, undesigned: bool = False
) -> list[Problem]:
    """Compare every selected source table with its upstream table; one source's failure spares the others.

    With ``undesigned`` (validating the whole project) every configured source is opened, and
    the upstream tables its globs select that no design extracts are reported too.
    """
    by_source: dict[str, list[Relation]] = {}
    if undesigned:
        by_source = {name: [] for name, config in project.settings.sources.items() if config.type != "lake"}
    for relation in relations:
        if relation.kind == "source" and relation.source is not None:
            by_source.setdefault(relation.source, []).append(relation)
    if not by_source:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(by_source))), thread_name_prefix="drift") as pool:
        results = [pool.submit(_source, project, name, tables, undesigned) for name, tables in by_source.items()]
        return [found for future in results for found in future.result()]


def _unreachable(project: Project, name: str, why: str) -> Problem:
    return problem(
        "upstream-unreachable",
        f'source "{name}" cannot be reached: {scrub(why)}',
        location=project.settings_doc.location(("sources", name, "dsn")),
        hint="Check that it is running and its dsn (and the variables it names); its tables were not checked. "
        "Run with --skip-sources to check everything else.",
    )


def _source(project: Project, name: str, relations: list[Relation], undesigned: bool = False) -> list[Problem]:
    config = project.source_config(name)
    try:
        dsn = project.source_dsn(name)
    except ConveyorError as exc:
        # a source without designs is opened only to list undesigned tables: its DSN's
        # problem is reported with the settings already
        return [from_error(exc, check="sources")] if relations else []
    try:
        source = open_source(config.type, name, dsn, root=project.root, zero_dates=config.zero_dates)
    except ImportError as exc:
        return [_unreachable(project, name, f"the {config.type} engine is not available ({exc}).")]
    found: list[Problem] = []
    try:
        with source:
            try:
                tables = set(source.list_tables())
            except ConveyorError as exc:
                return [_unreachable(project, name, exc.message)]
            for relation in relations:
                if not source.FILES_IN_PROJECT:  # a seed's values are checked against its design (validate/seeds.py)
                    found.extend(_table(project, source, relation, tables))
            if undesigned:
                found.extend(_undesigned(project, name, source, tables))
    except Exception as exc:  # a driver failure must not stop the other sources
        found.append(_unreachable(project, name, f"{type(exc).__name__}: {exc}"))
    return found


def _undesigned(project: Project, name: str, source: Source, tables: set[tuple[str, str]]) -> Iterator[Problem]:
    """Upstream tables the source's globs select that no design of the source extracts."""
    config = project.source_config(name)
    target = config.target_schema or name
    if any(broken.partition(".")[0] == target for broken in project.broken):
        return  # a design that does not load may be the one extracting a table
    designed = {
        _upstream_name(project, source, r, tables)
        for r in project.relations.values()
        if r.kind == "source" and r.source == name
    }
    key = ("sources", name, "include") if "include" in config.model_fields_set else ("sources", name)
    for schema, table in source.matching_tables(config.include, config.exclude):
        if (schema, table) not in designed:
            yield problem(
                "upstream-table-undesigned",
                f'source "{name}" has the upstream table {join_upstream(schema or None, table)}, which its '
                "include/exclude globs select but no design extracts.",
                location=project.settings_doc.location(key),
                hint=f"Run `conveyor bootstrap {name}` to write its design, or add it to the source's exclude globs.",
                details=Change("(table)", "undesigned", "-", join_upstream(schema or None, table)).details(),
            )


def _upstream_name(
    project: Project, source: Source, relation: Relation, tables: set[tuple[str, str]]
) -> tuple[str, str]:
    schema, table = project.upstream_table(relation)
    schema = schema or source.DEFAULT_SCHEMA
    if schema is None:
        candidates = [s for s, t in tables if t == table]
        schema = candidates[0] if len(candidates) == 1 else ""
    return schema, table


def _table(project: Project, source: Source, relation: Relation, tables: set[tuple[str, str]]) -> Iterator[Problem]:
    schema, table = _upstream_name(project, source, relation, tables)
    qualified = join_upstream(schema or None, table)
    bootstrap = f"`conveyor bootstrap --update {relation.name}`"
    if (schema, table) not in tables:
        known = [join_upstream(s or None, t) for s, t in sorted(tables)]
        key = "source_table" if relation.design.source_table else "name"
        yield problem(
            "upstream-table-missing",
            f'the upstream table {qualified} of "{relation.name}" does not exist in source "{source.name}".'
            + did_you_mean(qualified, known),
            location=relation.location(key),
            hint="The extract would fail. Fix source_table if it was renamed, or remove the design if the table is "
            "gone for good.",
            relation=relation.name,
            details=Change("(table)", "missing", relation.name, "-").details(),
        )
        return
    try:
        info = source.describe(schema, table)
    except ConveyorError as exc:
        yield problem(
            "upstream-describe-failed",
            f'the upstream table {qualified} of "{relation.name}" cannot be described: {scrub(exc.message)}',
            location=relation.location("name"),
            hint=exc.hint,
            relation=relation.name,
        )
        return
    for code, message, loc, change in _differences(relation, info, source):
        yield problem(
            code,
            message,
            location=relation.location(*loc),
            hint=f"Run {bootstrap} to merge the upstream change into the design.",
            relation=relation.name,
            details=change.details(),
        )


def _nullable(value: bool) -> str:
    return "not null" if value else "nullable"


def _shown(column: ColumnInfo) -> str:
    return str(column.type) if column.type is not None else "no exact design type"


def _differences(
    relation: Relation, info: TableInfo, source: Source
) -> Iterator[tuple[str, str, tuple[str | int, ...], Change]]:
    """(code, message, design key path, change) for every difference, in design column order.

    Types are judged by ``source.read_verdict``, the decision the extract itself makes.
    """
    design = relation.design
    upstream: dict[str, ColumnInfo] = {c.name: c for c in info.columns}
    where = f"{info.qualified} upstream"
    pk = set(design.constraints.primary_key)
    for index, column in enumerate(design.columns):
        up = upstream.get(column.name)
        shown = column.type or "-"
        if up is None:
            if column.skipped:
                yield (
                    "upstream-skipped-column-removed",
                    f'the skipped column "{column.name}" of "{relation.name}" no longer exists in {where}.',
                    ("columns", index),
                    Change(column.name, "removed (skipped)", shown, "-"),
                )
            else:
                yield (
                    "upstream-column-removed",
                    f'column "{column.name}" of "{relation.name}" no longer exists in {where}; the extract would fail.',
                    ("columns", index),
                    Change(column.name, "removed", shown, "-"),
                )
            continue
        if column.skipped:
            continue
        if column.type is not None:
            wanted = parse_type(column.type)
            verdict = source.read_verdict(up, wanted)
            given = _shown(up)
            if verdict == "mismatch":
                yield (
                    "upstream-column-retyped",
                    f'column "{column.name}" of "{relation.name}" is {up.native_type} ({given}) in {where}, which '
                    f"cannot be read as the design's {wanted}; the extract would fail.",
                    ("columns", index, "type"),
                    Change(column.name, "retyped", str(wanted), given),
                )
            elif verdict == "narrowing":
                yield (
                    "upstream-type-may-not-fit",
                    f'column "{column.name}" of "{relation.name}" is {up.native_type} ({given}) in {where} but '
                    f"{wanted} in the design; the extract checks every value and fails on the first that does not fit.",
                    ("columns", index, "type"),
                    Change(column.name, "may not fit", str(wanted), given),
                )
            elif verdict == "widening":
                yield (
                    "upstream-type-fits",
                    f'column "{column.name}" of "{relation.name}" is {up.native_type} ({given}) in {where} but '
                    f"{wanted} in the design; every value fits.",
                    ("columns", index, "type"),
                    Change(column.name, "fits", str(wanted), given),
                )
        declared = column.not_null or column.name in pk
        if declared and up.may_read_null:
            yield (
                "upstream-zero-date-not-null",
                f'column "{column.name}" of "{relation.name}" is a NOT NULL {up.native_type} in {where}, but its zero '
                "dates read as NULL (zero_dates: null), so a zero date would fail the load of a not-null column.",
                ("columns", index),
                Change(column.name, "zero dates read as NULL", "not null", "not null"),
            )
        elif declared and not up.not_null:
            yield (
                "upstream-column-nullable",
                f'column "{column.name}" of "{relation.name}" allows NULL in {where}, but the design says not null; '
                "a NULL would fail the load.",
                ("columns", index),
                Change(column.name, "nullable", "not null", "nullable"),
            )
        elif up.not_null and not declared and not up.may_read_null:
            yield (
                "upstream-column-not-null",
                f'column "{column.name}" of "{relation.name}" is NOT NULL in {where}; the design could say not_null.',
                ("columns", index),
                Change(column.name, "not null", "nullable", "not null"),
            )
    known = {c.name for c in design.columns}
    for up in info.columns:
        if up.name not in known:
            yield (
                "upstream-column-added",
                f'{where} has a new column "{up.name}" ({_shown(up)}), which "{relation.name}" does not extract.',
                ("columns",),
                Change(up.name, "added", "-", f"{_shown(up)} {_nullable(up.not_null)}"),
            )
    yield from _keys(relation, info, where)


def _keys(relation: Relation, info: TableInfo, where: str) -> Iterator[tuple[str, str, tuple[str | int, ...], Change]]:
    constraints = relation.design.constraints
    mine, theirs = tuple(constraints.primary_key), tuple(info.primary_key)
    if mine != theirs:
        shown_mine = f"({', '.join(mine)})" if mine else "none"
        shown_theirs = f"({', '.join(theirs)})" if theirs else "none"
        yield (
            "upstream-key-changed",
            f'the primary key of "{relation.name}" is {shown_mine} in the design but {shown_theirs} in {where}.',
            ("constraints", "primary_key"),
            Change("(primary key)", "changed", shown_mine, shown_theirs),
        )
    design_unique = {tuple(u) for u in constraints.unique}
    upstream_unique = {tuple(u) for u in info.unique}
    for columns in sorted(upstream_unique - design_unique):
        shown = f"({', '.join(columns)})"
        yield (
            "upstream-unique-changed",
            f'{where} has a unique constraint on {shown}, which the design of "{relation.name}" does not declare.',
            ("constraints", "unique"),
            Change("(unique)", "added", "-", shown),
        )
    for columns in sorted(design_unique - upstream_unique):
        shown = f"({', '.join(columns)})"
        yield (
            "upstream-unique-changed",
            f'the design of "{relation.name}" declares unique {shown}, which {where} does not guarantee; '
            "duplicates would fail the load.",
            ("constraints", "unique"),
            Change("(unique)", "dropped", shown, "-"),
        )
