"""Bootstrap: write table designs from what the upstream sources reflect.

For every selected source, :func:`bootstrap` lists the upstream tables its ``include`` and
``exclude`` globs let through, reflects each one (:meth:`Source.describe`) and writes
``schemas/<target_schema>/<table>.yaml``: columns with their design types, keys, and a
suggested ``extract.split_by``. With ``update=True`` it merges upstream changes into the
existing designs and keeps every hand edit (see docs/bootstrap.md for the rules).

Everything is planned before anything is written: a selection term that matches nothing
is a :class:`~conveyor.errors.SelectionError` and no file changes. One table's failure
(e.g. a column type the source cannot map) is reported and the others go on. Files are
written atomically (temp file + ``os.replace``) and the output is stable: the same upstream
gives byte-identical files, and an ``update`` that changes nothing does not touch a file.

The generated YAML is produced with ruamel.yaml (round-trip mode) so merges keep the
user's comments and key order; the project itself is still read with PyYAML, whose YAML
1.1 rules decide which strings must be quoted (``no``, ``on``, ``1e3`` ...).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import itertools
import math
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from conveyor.config.secrets import scrub
from conveyor.design.models import TableDesign
from conveyor.design.types import SqlType, parse_type
from conveyor.design.upstream import join_upstream
from conveyor.errors import ConveyorError, SelectionError, did_you_mean
from conveyor.lake.manifest import fsync_dir
from conveyor.project import Project, Relation
from conveyor.sources import open_source, partition
from conveyor.sources.base import ColumnInfo, Source, TableInfo
from conveyor.validate.names import name_notes
from conveyor.warehouse import engine_class
from conveyor.warehouse.base import Warehouse

#: tables with more rows than this get a comment noting the estimate in their new design
LARGE_TABLE_ROWS = 5_000_000

#: design types a single-column primary key may have to be suggested as extract.split_by
SPLIT_TYPES = partition.SPLIT_TYPES
INTEGER_TYPES = frozenset({"tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint"})

#: canonical key order of a design and of a column; new keys are inserted in this order
TABLE_KEYS = (
    "name",
    "kind",
    "description",
    "source_table",
    "columns",
    "constraints",
    "extract",
    "depends_on",
    "tags",
    "attributes",
)
COLUMN_KEYS = ("name", "type", "not_null", "description", "skipped", "identity")
CONSTRAINT_KEYS = ("primary_key", "unique", "natural_key")

#: what happened to one table (``dry_run`` reports what *would* happen)
ACTIONS = ("created", "updated", "unchanged", "exists", "failed", "orphaned")

_DEFAULT_INDENT = (2, 4, 2)  # mapping, sequence, offset: "columns:\n  - name: id\n    type: bigint"
_UNSAFE_NAME = re.compile(r"[./\\\x00-\x1f]")
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()


@dataclass
class TableReport:
    """What bootstrap did (or, in a dry run, would do) for one table design."""

    table: str
    """The design's name, ``<target_schema>.<table>`` (``<target_schema>.*`` when a whole source failed)."""
    source: str
    upstream: str | None
    """The upstream ``schema.table`` (None when a whole source failed)."""
    action: str
    """One of :data:`ACTIONS`."""
    path: Path | None = None
    columns: int | None = None
    """Columns in the design after the run."""
    changes: list[str] = field(default_factory=list)
    """For updates: ``+col``, ``-col``, ``~col type a->b``, ``~col not null``, key changes."""
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self, root: Path | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        shown: str | None = None
        if self.path is not None:
            shown = (
                str(self.path.relative_to(root))
                if root is not None and self.path.is_relative_to(root)
                else str(self.path)
            )
        return {
            "table": self.table,
            "source": self.source,
            "upstream": self.upstream,
            "action": self.action,
            "dry_run": dry_run,
            "columns": self.columns,
            "file": shown,
            "changes": list(self.changes),
            "notes": list(self.notes),
            "error": self.error,
        }


@dataclass
class BootstrapReport:
    """Every table's outcome, in source and table order, plus warnings for the user."""

    tables: list[TableReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    update: bool = False
    root: Path | None = None

    @property
    def failed(self) -> list[TableReport]:
        return [t for t in self.tables if t.action == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def with_action(self, action: str) -> list[TableReport]:
        return [t for t in self.tables if t.action == action]

    def counts(self) -> dict[str, int]:
        """Tables per action, for the actions that occurred (in :data:`ACTIONS` order)."""
        return {a: n for a in ACTIONS if (n := len(self.with_action(a)))}

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_dict(self.root, dry_run=self.dry_run) for t in self.tables]


# --------------------------------------------------------------------------- selection


@dataclass
class _Term:
    """One selection term: a source (or target schema) name, or a glob over warehouse names."""

    text: str
    sources: list[str]
    whole: bool
    matched: bool = False


def _parse_terms(project: Project, selection: Sequence[str]) -> list[_Term]:
    sources = project.settings.sources
    schemas = {name: (cfg.target_schema or name) for name, cfg in sources.items()}
    terms = []
    for raw in selection:
        text = raw.strip()
        if not text:
            continue
        if text in sources:
            terms.append(_Term(text, [text], whole=True, matched=True))
            continue
        if "." not in text:
            hits = [n for n in sources if fnmatch.fnmatchcase(n, text) or fnmatch.fnmatchcase(schemas[n], text)]
            if not hits:
                raise _no_match(text, [*sources, *schemas.values()], "no source or target schema has that name")
            terms.append(_Term(text, hits, whole=True, matched=True))
            continue
        schema_glob = text.split(".", 1)[0]
        hits = [n for n in sources if fnmatch.fnmatchcase(schemas[n], schema_glob)]
        if not hits:
            candidates = [f"{s}.*" for s in schemas.values()]
            raise _no_match(text, candidates, f'no source loads into a schema matching "{schema_glob}"')
        terms.append(_Term(text, hits, whole=False))
    return terms


def _no_match(term: str, candidates: Iterable[str], why: str) -> SelectionError:
    return SelectionError(
        f'the selection "{term}" matches nothing: {why}.' + did_you_mean(term, sorted(set(candidates))),
        hint='Terms are source names or globs over "<target_schema>.<table>", e.g. shop or shop.order*.',
        code="no-match",
    )


# --------------------------------------------------------------------------- planning


@dataclass
class _Upstream:
    """One upstream table of a source and the warehouse name its design gets."""

    schema: str
    table: str
    name: str
    matched: bool
    designs: list[Relation] = field(default_factory=list)
    renamed_because: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class _Write:
    path: Path
    text: str
    report: TableReport
    mode: int | None = None


@dataclass
class _SourcePlan:
    name: str
    target: str
    reports: list[TableReport] = field(default_factory=list)
    writes: list[_Write] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    opened: bool = False
    limit: DecimalLimit = field(default_factory=lambda: DecimalLimit())
    odd: list[str] = field(default_factory=list)
    """Columns written without their exact type (``pg.docs.search (tsvector) as text``)."""


def bootstrap(
    project: Project, selection: Sequence[str] = (), *, update: bool = False, dry_run: bool = False
) -> BootstrapReport:
    """Write (or, with ``update``, merge) table designs for the upstream tables of the selection.

    Args:
        project: a loaded project; it may have sources and no ``schemas/`` folder yet.
        selection: source names, or globs over ``<target_schema>.<table>`` (the names the
            designs get); empty means every source.
        update: merge upstream changes into existing designs, keeping hand edits. Without
            it an existing design is left untouched (action ``exists``).
        dry_run: plan and report, write nothing.

    Returns:
        The report; its ``ok`` is false when a table (or a whole source) failed.

    Raises:
        SelectionError: a term matches nothing (nothing is written).
        SecretError: a source's DSN names an unset variable (nothing is written).
    """
    terms = _parse_terms(project, selection)
    chosen = [n for n in project.settings.sources if not terms or any(n in t.sources for t in terms)]
    dsns = {name: project.source_dsn(name) for name in chosen}  # bad input fails before any connection
    limit = decimal_limit(project)
    plans = [_plan_source(project, name, dsns[name], terms, update=update, limit=limit) for name in chosen]

    for term in terms:
        if term.matched:
            continue
        plans_of_term = [p for p in plans if p.name in term.sources]
        if plans_of_term and not any(p.opened for p in plans_of_term):
            continue  # its sources failed (reported); we cannot say it matches nothing
        if not any(fnmatch.fnmatchcase(n, term.text) for p in plans_of_term for n in p.names):
            names = [n for p in plans_of_term for n in p.names]
            raise _no_match(term.text, names, "no upstream table or design has that warehouse name")

    report = BootstrapReport(dry_run=dry_run, update=update, root=project.root)
    for plan in plans:
        report.tables.extend(plan.reports)
        report.warnings.extend(plan.warnings)
        if not dry_run:
            for write in plan.writes:
                try:
                    _atomic_write(write.path, write.text, write.mode)
                except OSError as exc:
                    write.report.action = "failed"
                    write.report.error = f"cannot write {write.path}: {exc.strerror or exc}."
    missing = [t.table for t in report.tables if t.action == "failed" and t.upstream is not None and t.path is None]
    if dry_run:
        missing = [t.table for t in report.tables if t.action == "created"] + missing
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        state = "would still have" if dry_run else "have"
        report.warnings.append(f"{len(missing)} upstream table(s) {state} no design: {shown}.")
    odd = [column for plan in plans for column in plan.odd]
    if odd:
        report.warnings.append(
            f"{len(odd)} column(s) have no exact design type a warehouse here holds, written visibly (a comment "
            f"on each says why; docs/types.md): {', '.join(odd)}."
        )
    return report


def _plan_source(
    project: Project, name: str, dsn: str, terms: list[_Term], *, update: bool, limit: DecimalLimit
) -> _SourcePlan:
    config = project.source_config(name)
    target = config.target_schema or name
    plan = _SourcePlan(name, target, limit=limit)
    whole = not terms or any(t.whole and name in t.sources for t in terms)
    globs = [t for t in terms if not t.whole and name in t.sources]

    def selected(warehouse_name: str) -> bool:
        hit = False
        for term in globs:
            if fnmatch.fnmatchcase(warehouse_name, term.text):
                term.matched = hit = True
        return whole or hit

    try:
        source = open_source(config.type, name, dsn, root=project.root, zero_dates=config.zero_dates)
    except ImportError as exc:
        plan.reports.append(
            TableReport(f"{target}.*", name, None, "failed", error=f"the {config.type} engine is not available: {exc}.")
        )
        return plan
    with source:
        try:
            everything = sorted(source.list_tables())
            matched = set(source.matching_tables(config.include, config.exclude))
        except ConveyorError as exc:
            plan.reports.append(TableReport(f"{target}.*", name, None, "failed", error=scrub(exc.render())))
            return plan
        plan.opened = True
        known = [f"{s}.{t}" for s, t in everything]
        for pattern in config.include:
            if not any(fnmatch.fnmatchcase(q, pattern) for q in known):
                plan.warnings.append(
                    f'source "{name}": include pattern "{pattern}" matches no upstream table.'
                    + did_you_mean(pattern, known)
                )
        if everything and not matched:
            plan.warnings.append(f'source "{name}": include and exclude leave no upstream table.')
        designs = [r for r in project.relations.values() if r.source == name and r.kind == "source"]
        upstreams, orphans = _assign_names(project, source, everything, matched, designs)
        plan.names = {f"{target}.{u.name}" for u in upstreams if u.matched} | {r.name for r in designs}

        for upstream in upstreams:
            if not upstream.matched:
                for relation in upstream.designs:
                    if selected(relation.name):
                        plan.warnings.append(
                            f'"{relation.name}": its upstream table {upstream.qualified} is left out by the include/'
                            f'exclude globs of source "{name}"; bootstrap did not touch it.'
                        )
                continue
            warehouse_name = f"{target}.{upstream.name}"
            chosen = [r for r in upstream.designs if selected(r.name)]
            if (upstream.designs and not chosen) or (not upstream.designs and not selected(warehouse_name)):
                continue
            if chosen and not update:
                for relation in chosen:
                    plan.reports.append(
                        TableReport(
                            relation.name,
                            name,
                            upstream.qualified,
                            "exists",
                            relation.doc.path,
                            len(relation.design.columns),
                            notes=["exists (use --update)"],
                        )
                    )
                continue
            try:
                info = source.describe(upstream.schema, upstream.table)
            except ConveyorError as exc:
                plan.reports.append(_failure(warehouse_name, name, upstream, exc, chosen))
                continue
            if chosen:
                for relation in chosen:
                    _plan_update(plan, relation, info)
            else:
                _plan_create(project, plan, upstream, info)

        for relation in orphans:
            if not selected(relation.name):
                continue
            schema, table = project.upstream_table(relation)
            shown = f"{schema}.{table}" if schema else table
            plan.reports.append(
                TableReport(
                    relation.name,
                    name,
                    shown,
                    "orphaned",
                    relation.doc.path,
                    len(relation.design.columns),
                    notes=[f"upstream table {shown} does not exist"],
                )
            )
            plan.warnings.append(
                f'"{relation.name}" ({relation.doc.display}) extracts {shown}, which does not exist in source "{name}".'
            )
    return plan


def _failure(
    warehouse_name: str, source: str, upstream: _Upstream, exc: ConveyorError, designs: list[Relation]
) -> TableReport:
    report = TableReport(warehouse_name, source, upstream.qualified, "failed", error=scrub(exc.render()))
    if designs:
        report.table = designs[0].name
        report.path = designs[0].doc.path
        report.notes.append("design left unchanged")
    else:
        report.notes.append("no design written")
    return report


def _assign_names(
    project: Project,
    source: Source,
    everything: list[tuple[str, str]],
    matched: set[tuple[str, str]],
    designs: list[Relation],
) -> tuple[list[_Upstream], list[Relation]]:
    """Give every upstream table its warehouse name; existing designs keep theirs.

    An upstream table with a design keeps the design's name. A new table gets its own
    name unless a design or another table has it already (compared case-insensitively, for
    case-insensitive warehouses and file systems): then it becomes ``<schema>_<table>``.
    Tables in the source's default schema are named first, so they get the plain names.
    """
    upstreams = {(s, t): _Upstream(s, t, "", (s, t) in matched) for s, t in everything}
    by_table: dict[str, list[tuple[str, str]]] = {}
    for s, t in everything:
        by_table.setdefault(t, []).append((s, t))
    orphans: list[Relation] = []
    for relation in sorted(designs, key=lambda r: r.name):
        schema, table = project.upstream_table(relation)
        if schema is not None:
            found = upstreams.get((schema, table))
        else:
            candidates = by_table.get(table, [])
            found = upstreams[candidates[0]] if len(candidates) == 1 else None
        if found is None:
            orphans.append(relation)
        else:
            found.designs.append(relation)
            found.name = found.name or relation.table
    taken = {r.table.casefold(): r.table for r in designs}
    owner = {r.table.casefold(): f"design {r.name}" for r in designs}
    default = source.DEFAULT_SCHEMA
    fresh = sorted(
        (u for u in upstreams.values() if u.matched and not u.designs),
        key=lambda u: (u.schema != default, u.schema, u.table),
    )
    for upstream in fresh:
        base = _UNSAFE_NAME.sub("_", upstream.table)
        name = base
        if name.casefold() in taken:
            upstream.renamed_because = owner[name.casefold()]
            name = f"{_UNSAFE_NAME.sub('_', upstream.schema)}_{base}"
            suffix = 2
            while name.casefold() in taken:
                name = f"{_UNSAFE_NAME.sub('_', upstream.schema)}_{base}_{suffix}"
                suffix += 1
        elif base != upstream.table:
            upstream.renamed_because = "the upstream name has characters a design name cannot hold"
        upstream.name = name
        taken[name.casefold()] = name
        owner[name.casefold()] = f"upstream {upstream.qualified}"
    return sorted(upstreams.values(), key=lambda u: (u.schema, u.table)), orphans


# --------------------------------------------------------------------------- new designs


@dataclass(frozen=True)
class DecimalLimit:
    """The widest decimal every configured environment holds, and which environment sets it."""

    precision: int = Warehouse.MAX_DECIMAL_PRECISION
    holder: str = "every warehouse"


def decimal_limit(project: Project) -> DecimalLimit:
    """The narrowest ``MAX_DECIMAL_PRECISION`` over the project's environments (38 without any)."""
    found = DecimalLimit()
    environments = project.settings.environments
    if environments:
        found = DecimalLimit(10**6)
    for env_name, env in sorted(environments.items()):
        precision = engine_class(env.type).MAX_DECIMAL_PRECISION
        if precision < found.precision:
            found = DecimalLimit(precision, f'the {env.type} environment "{env_name}"')
    return found


@dataclass(frozen=True)
class Choice:
    """What bootstrap writes for one upstream column: a type (None: skipped), not_null, and why."""

    type: SqlType | None
    not_null: bool
    note: str | None = None
    """Set when the design does not say the column's exact type; a comment on its line."""
    null_note: str | None = None
    """Set when upstream says NOT NULL but the design does not."""


def choose(column: ColumnInfo, limit: DecimalLimit = DecimalLimit()) -> Choice:
    """The design type and nullability bootstrap writes for an upstream column (docs/types.md)."""
    not_null = column.not_null and not column.may_read_null
    null_note = None
    if column.not_null and column.may_read_null:
        null_note = "NOT NULL upstream, but the read may give NULL (zero dates, zero_dates: null)"
    sql_type = column.type
    if sql_type is None and column.text_form is not None:
        note = f"{column.native_type} has no exact design type: text is {column.text_form}"
        return Choice(SqlType("text"), not_null, note, null_note)
    if sql_type is None:
        note = f"{column.native_type} has no exact design type nor faithful text form: skipped"
        return Choice(None, False, note, null_note)
    if sql_type.element.name == "decimal" and (sql_type.element.precision or 0) > limit.precision:
        note = (
            f"{column.native_type} is wider than the decimal({limit.precision},s) {limit.holder} holds: text keeps "
            f"every digit (or declare decimal({limit.precision},s), checked value by value at extract)"
        )
        return Choice(SqlType("text", is_array=sql_type.is_array), not_null, note, null_note)
    return Choice(sql_type, not_null, None, null_note)


def suggest_split_by(info: TableInfo) -> str | None:
    """A split key for partitioned extracts, or None to let the extractor decide.

    The single-column primary key if its type is an integer, date, timestamp, uuid or text;
    else the first not-null integer column with a single-column unique constraint.
    """
    columns = {c.name: c for c in info.columns}
    if len(info.primary_key) == 1:
        key = columns.get(info.primary_key[0])
        if key is not None and key.type is not None and not key.type.is_array and key.type.name in SPLIT_TYPES:
            return key.name
    single_unique = {u[0] for u in info.unique if len(u) == 1}
    for column in info.columns:
        if (
            column.name in single_unique
            and column.not_null
            and column.type is not None
            and not column.type.is_array
            and column.type.name in INTEGER_TYPES
        ):
            return column.name
    return None


def _comment(obj: object) -> str | None:
    """The upstream comment of a table or column, if the engine reflects one."""
    value = getattr(obj, "comment", None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _scalar(value: str) -> str:
    """A string as ruamel should write it: quoted when PyYAML would read it as something else."""
    if _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:
        return SingleQuotedScalarString(value)
    return value


def _flow(items: Iterable[str]) -> CommentedSeq:
    seq = CommentedSeq([_scalar(i) for i in items])
    seq.fa.set_flow_style()
    return seq


def _column_map(column: ColumnInfo, limit: DecimalLimit = DecimalLimit()) -> CommentedMap:
    choice = choose(column, limit)
    item = CommentedMap()
    item["name"] = _scalar(column.name)
    if choice.type is None:
        item["skipped"] = True
    else:
        item["type"] = _scalar(str(choice.type))
    if choice.not_null:
        item["not_null"] = True
    if (text := _comment(column)) is not None:
        item["description"] = _scalar(text)
    if choice.note is not None:
        item.yaml_add_eol_comment(choice.note, "skipped" if choice.type is None else "type")
    if choice.null_note is not None:
        item.yaml_add_eol_comment(choice.null_note, "name")
    return item


def _unique_seq(unique: Sequence[Sequence[str]]) -> CommentedSeq:
    return CommentedSeq([_flow(u) for u in unique])


def new_design(name: str, source: str, info: TableInfo, limit: DecimalLimit = DecimalLimit()) -> CommentedMap:
    """The design document for an upstream table (header comment included)."""
    doc = CommentedMap()
    doc["name"] = _scalar(name)
    if (text := _comment(info)) is not None:
        doc["description"] = _scalar(text)
    doc["source_table"] = _scalar(join_upstream(info.schema, info.name))
    doc["columns"] = CommentedSeq([_column_map(c, limit) for c in info.columns])
    constraints = CommentedMap()
    if info.primary_key:
        constraints["primary_key"] = _flow(info.primary_key)
    if info.unique:
        constraints["unique"] = _unique_seq(info.unique)
    if constraints:
        doc["constraints"] = constraints
    split_by = suggest_split_by(info)
    if split_by is not None:
        doc["extract"] = CommentedMap(split_by=_scalar(split_by))
    header = [f"generated by conveyor bootstrap from {source} {info.qualified}"]
    if info.row_estimate is not None and info.row_estimate > LARGE_TABLE_ROWS:
        suggested = min(32, math.ceil(info.row_estimate / 2_000_000))
        header.append(
            f"upstream had about {info.row_estimate:,} rows at bootstrap; the extractor picks partitions "
            f"itself (set extract.partitions, e.g. {suggested}, to fix the count)"
        )
    doc.yaml_set_start_comment("\n".join(header))
    return doc


def _note_odd(plan: _SourcePlan, table: str, columns: Iterable[ColumnInfo]) -> None:
    """Remember the columns a design holds without their exact type, for the one warning."""
    for column in columns:
        choice = choose(column, plan.limit)
        if choice.note is not None:
            shown = "skipped" if choice.type is None else f"as {choice.type}"
            plan.odd.append(f"{table}.{column.name} ({column.native_type}) {shown}")


def _plan_create(project: Project, plan: _SourcePlan, upstream: _Upstream, info: TableInfo) -> None:
    name = f"{plan.target}.{upstream.name}"
    path = project.root / "schemas" / plan.target / f"{upstream.name}.yaml"
    report = TableReport(name, plan.name, upstream.qualified, "created", path, len(info.columns))
    if upstream.renamed_because:
        note = f"named {upstream.name}: {upstream.table} is taken by {upstream.renamed_because}"
        if upstream.renamed_because.startswith("the upstream name"):
            note = f"named {upstream.name}: {upstream.renamed_because}"
        report.notes.append(note)
        plan.warnings.append(f'"{name}" extracts {upstream.qualified}; {note}.')
    if path.exists():  # a file the project did not load as this source's design: never overwrite it
        report.action = "exists"
        report.columns = None
        report.notes = [f"{path.name} exists but is not a design of source {plan.name}; left untouched"]
        plan.reports.append(report)
        return
    if info.row_estimate is not None and info.row_estimate > LARGE_TABLE_ROWS:
        report.notes.append(f"about {info.row_estimate:,} rows upstream")
    text = dump(new_design(name, plan.name, info, plan.limit), _DEFAULT_INDENT)
    _note_odd(plan, name, info.columns)
    for note in name_notes(project, plan.target, upstream.name, [c.name for c in info.columns]):
        report.notes.append(note)
        plan.warnings.append(f'"{name}": {note}; validate and every run refuse it until then.')
    problem = _check(text)
    if problem is not None:
        report.action, report.path, report.error = "failed", None, problem
        report.notes.append("no design written")
    else:
        plan.writes.append(_Write(path, text, report))
    plan.reports.append(report)


# --------------------------------------------------------------------------- updates


def merge(
    doc: CommentedMap, design: TableDesign, info: TableInfo, limit: DecimalLimit = DecimalLimit()
) -> tuple[list[str], list[str]]:
    """Merge the reflected table into a design document in place; return (changes, notes).

    ``design`` is the validated view of ``doc`` (as the project loader read it): decisions
    are made on it, edits are made on ``doc`` so comments, quoting and key order survive.
    Types and not_null become what a new design would say (:func:`choose`).
    """
    changes: list[str] = []
    notes: list[str] = []
    upstream = {c.name: c for c in info.columns}

    if design.description is None and (text := _comment(info)) is not None:
        _put(doc, "description", _scalar(text), TABLE_KEYS)
        changes.append("description")

    seq = doc.get("columns")
    if not isinstance(seq, CommentedSeq):
        seq = CommentedSeq()
        _put(doc, "columns", seq, TABLE_KEYS)
    items = {str(item.get("name")): item for item in seq if isinstance(item, CommentedMap)}
    present = {c.name for c in design.columns}
    removed = [c for c in design.columns if c.name not in upstream]
    for column in design.columns:
        item = items.get(column.name)
        up = upstream.get(column.name)
        if up is None or item is None:
            continue
        choice = choose(up, limit)
        if choice.type is None:
            if not column.skipped:
                _put(item, "skipped", True, COLUMN_KEYS)
                item.yaml_add_eol_comment(choice.note, "skipped")
                changes.append(f"~{column.name} skipped (no exact design type)")
        elif column.type is None or parse_type(column.type) != choice.type:
            _put(item, "type", _scalar(str(choice.type)), COLUMN_KEYS)
            if choice.note is not None:
                item.yaml_add_eol_comment(choice.note, "type")
            changes.append(f"~{column.name} type {column.type or 'none'}->{choice.type}")
        if column.not_null != choice.not_null:
            if choice.not_null:
                _put(item, "not_null", True, COLUMN_KEYS)
                changes.append(f"~{column.name} not null")
            else:
                item.pop("not_null", None)
                changes.append(f"~{column.name} nullable")
                if column.identity:
                    notes.append(f"{column.name} is marked identity but is nullable upstream")
        if column.description is None and (text := _comment(up)) is not None:
            _put(item, "description", _scalar(text), COLUMN_KEYS)
            changes.append(f"~{column.name} description")
    for column in removed:
        for index in range(len(seq) - 1, -1, -1):
            if isinstance(seq[index], dict) and str(seq[index].get("name")) == column.name:
                _delete_item(seq, index)
        changes.append(f"-{column.name}")
    added = [_column_map(c, limit) for c in info.columns if c.name not in present]
    if added:
        _append_items(seq, added)
        changes.extend(f"+{item['name']}" for item in added)

    changes.extend(_merge_constraints(doc, design, info))

    gone = {c.name for c in removed}
    if design.extract.split_by in gone:
        notes.append(f"extract.split_by names {design.extract.split_by}, which is gone upstream")
    if design.extract.incremental is not None and design.extract.incremental.cursor in gone:
        notes.append(f"extract.incremental.cursor names {design.extract.incremental.cursor}, which is gone upstream")
    lost_natural = [c for c in design.constraints.natural_key if c in gone]
    if lost_natural:
        notes.append(f"constraints.natural_key names {', '.join(lost_natural)}, gone upstream")
    return changes, notes


def _merge_constraints(doc: CommentedMap, design: TableDesign, info: TableInfo) -> list[str]:
    changes: list[str] = []
    want_pk = list(info.primary_key)
    want_unique = [list(u) for u in info.unique]
    pk_changed = design.constraints.primary_key != want_pk
    unique_changed = {tuple(u) for u in design.constraints.unique} != {tuple(u) for u in want_unique}
    if not pk_changed and not unique_changed:
        return changes
    constraints = doc.get("constraints")
    if not isinstance(constraints, CommentedMap):
        constraints = CommentedMap()
        _put(doc, "constraints", constraints, TABLE_KEYS)
    if pk_changed:
        old = ", ".join(design.constraints.primary_key) or "none"
        new = ", ".join(want_pk) or "none"
        if want_pk:
            _put(constraints, "primary_key", _flow(want_pk), CONSTRAINT_KEYS)
        else:
            constraints.pop("primary_key", None)
        changes.append(f"primary key ({old})->({new})")
    if unique_changed:
        old_set = {tuple(u) for u in design.constraints.unique}
        new_set = {tuple(u) for u in want_unique}
        if want_unique:
            _put(constraints, "unique", _unique_seq(want_unique), CONSTRAINT_KEYS)
        else:
            constraints.pop("unique", None)
        changes.extend(f"+unique ({', '.join(u)})" for u in want_unique if tuple(u) not in old_set)
        changes.extend(f"-unique ({', '.join(u)})" for u in design.constraints.unique if tuple(u) not in new_set)
    if not constraints:
        doc.pop("constraints", None)
    return changes


def _put(mapping: CommentedMap, key: str, value: object, order: Sequence[str]) -> None:
    """Set a key, keeping its place if it exists, else inserting it in canonical order."""
    if key in mapping:
        mapping[key] = value
        return
    rank = order.index(key) if key in order else len(order)
    position = 0
    for index, existing in enumerate(mapping):
        if existing in order and order.index(existing) < rank:
            position = index + 1
    mapping.insert(position, key, value)


# ruamel keeps the comment lines that follow a sequence item on that item (on its last key,
# or on the sequence for a flow item). Deleting an item would drop the comments that
# introduce the next item; appending after it would put the comments that introduce the
# next section between the old and new items. These helpers move such lines along.


def _trailing_slot(seq: CommentedSeq, index: int, *, create: bool) -> tuple[list[Any], int] | None:
    """The comment entry (and position in it) holding what follows ``seq[index]``."""
    item = seq[index]
    if isinstance(item, CommentedMap) and len(item) and not item.fa.flow_style():
        last = list(item)[-1]
        value = item[last]
        if isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
            return None  # the comment sits deeper, in a nested block collection
        if last not in item.ca.items and not create:
            return None
        return item.ca.items.setdefault(last, [None, None, None, None]), 2
    if index not in seq.ca.items and not create:
        return None
    return seq.ca.items.setdefault(index, [None, None, None, None]), 0


def _take_trailing(seq: CommentedSeq, index: int) -> list[str]:
    """Remove and return the full comment lines after ``seq[index]`` (its own end-of-line comment stays)."""
    slot = _trailing_slot(seq, index, create=False)
    if slot is None or slot[0][slot[1]] is None:
        return []
    entry, position = slot
    token = entry[position]
    if not isinstance(getattr(token, "value", None), str):
        return []
    first, *rest = token.value.split("\n")
    if rest and rest[-1] == "":
        rest.pop()
    if first:
        token.value = first + "\n"
    else:
        entry[position] = None
    return rest


def _give_trailing(seq: CommentedSeq, index: int, lines: list[str]) -> None:
    """Put comment lines after ``seq[index]``."""
    if not lines:
        return
    slot = _trailing_slot(seq, index, create=True)
    if slot is None:
        return
    entry, position = slot
    text = "\n".join(lines) + "\n"
    token = entry[position]
    if token is None:
        entry[position] = CommentToken("\n" + text, CommentMark(0), None)
    else:
        token.value = token.value + ("" if token.value.endswith("\n") else "\n") + text


def _delete_item(seq: CommentedSeq, index: int) -> None:
    """Delete ``seq[index]``, keeping the comment lines that introduce the next item or section."""
    item = seq[index]
    try:
        lines = _take_trailing(seq, index)
        if isinstance(item, CommentedMap) and not item.fa.flow_style():
            body = item.lc.col  # deeper lines commented the removed column itself
            lines = [line for line in lines if len(line) - len(line.lstrip()) < body or not line.strip()]
    except Exception:  # ruamel internals: losing a comment is better than failing the merge
        lines = []
    del seq[index]
    if not lines:
        return
    try:
        if index > 0:
            _give_trailing(seq, index - 1, lines)
        elif len(seq):
            text = "\n".join(line.strip().removeprefix("#").strip() for line in lines if line.strip())
            seq.yaml_set_comment_before_after_key(0, before=text, indent=item.lc.col - 2 if item.lc.col >= 2 else 0)
    except Exception:
        pass


def _append_items(seq: CommentedSeq, items: list[CommentedMap]) -> None:
    """Append items after the last one, moving the comments that followed it after them."""
    try:
        lines = _take_trailing(seq, len(seq) - 1) if len(seq) else []
    except Exception:
        lines = []
    seq.extend(items)
    with contextlib.suppress(Exception):
        _give_trailing(seq, len(seq) - 1, lines)


def _plan_update(plan: _SourcePlan, relation: Relation, info: TableInfo) -> None:
    path = relation.doc.path
    report = TableReport(relation.name, plan.name, info.qualified, "unchanged", path, len(relation.design.columns))
    try:
        original = path.read_text(encoding="utf-8")
        doc = _loader().load(original)
    except (OSError, UnicodeDecodeError) as exc:
        report.action, report.error = "failed", f"cannot read {relation.doc.display}: {exc}."
        plan.reports.append(report)
        return
    except Exception as exc:  # ruamel's own parser errors: PyYAML accepted the file, ruamel did not
        report.action, report.error = "failed", f"cannot merge into {relation.doc.display}: {exc}."
        plan.reports.append(report)
        return
    if not isinstance(doc, CommentedMap):
        report.action, report.error = "failed", f"{relation.doc.display} is not a mapping."
        plan.reports.append(report)
        return
    changes, notes = merge(doc, relation.design, info, plan.limit)
    touched = {c.lstrip("+~").split(" ")[0] for c in changes}
    _note_odd(plan, relation.name, [c for c in info.columns if c.name in touched])
    report.notes.extend(notes)
    if not changes:
        plan.reports.append(report)
        return
    text = dump(doc, guess_indent(original))
    problem = _check(text)
    if problem is not None:
        report.action, report.error = "failed", problem
        report.notes.append("design left unchanged")
        plan.reports.append(report)
        return
    report.action, report.changes = "updated", changes
    report.columns = len(doc.get("columns") or [])
    plan.reports.append(report)
    plan.writes.append(_Write(path, text, report, mode=_mode(path)))


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


# --------------------------------------------------------------------------- YAML


def _loader() -> YAML:
    loader = YAML(typ="rt")
    loader.preserve_quotes = True
    return loader


def dump(doc: CommentedMap, indent: tuple[int, int, int] = _DEFAULT_INDENT) -> str:
    """Render a design document (block style, no line wrapping)."""
    writer = YAML(typ="rt")
    writer.preserve_quotes = True
    writer.width = 4096
    writer.allow_unicode = True
    mapping, sequence, offset = indent
    writer.indent(mapping=mapping, sequence=sequence, offset=offset)
    out = io.StringIO()
    writer.dump(doc, out)
    return out.getvalue()


_SEQ_ITEM = re.compile(r"^( *)-( +)\S")
_KEY_LINE = re.compile(r"^( *)[^\s#-][^#]*:\s*(#.*)?$")
_NESTED_KEY = re.compile(r"^( +)[^\s#-]")


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) the file uses, so a merge keeps its style."""
    mapping, sequence, offset = _DEFAULT_INDENT
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    found_map = found_seq = False
    for previous, line in itertools.pairwise(lines):
        parent = _KEY_LINE.match(previous)
        if parent is None:
            continue
        base = len(parent.group(1))
        item = _SEQ_ITEM.match(line)
        if item is not None and not found_seq:
            offset = max(0, len(item.group(1)) - base)
            sequence = offset + 1 + len(item.group(2))
            found_seq = True
        elif (nested := _NESTED_KEY.match(line)) is not None and not found_map and len(nested.group(1)) > base:
            mapping = len(nested.group(1)) - base
            found_map = True
        if found_map and found_seq:
            break
    if sequence < offset + 2:
        sequence = offset + 2
    return mapping, sequence, offset


def _check(text: str) -> str | None:
    """Why the project loader would reject this design text, or None when it accepts it."""
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        TableDesign.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        return f"the design bootstrap produced does not validate: {exc}"
    return None


def _atomic_write(path: Path, text: str, mode: int | None = None) -> None:
    """Write a file all at once: a temp file beside it, fsync, ``os.replace``, fsync the folder.

    A new file gets the usual permissions (0666 less the umask, applied by ``os.open``); a
    replaced file keeps its own (``mode``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


__all__ = [
    "ACTIONS",
    "BootstrapReport",
    "TableReport",
    "bootstrap",
    "dump",
    "guess_indent",
    "merge",
    "new_design",
    "suggest_split_by",
]
