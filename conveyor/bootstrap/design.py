"""A new table design from what the upstream reflects: columns, keys, decimal choices and a
suggested ``extract.split_by``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from conveyor.bootstrap.plan import LARGE_TABLE_ROWS, DecimalLimit, SourcePlan, Upstream, Write
from conveyor.bootstrap.report import TableReport
from conveyor.bootstrap.yamlfile import DEFAULT_INDENT, RESOLVER, STR_TAG, check_dump, dump
from conveyor.design.types import SqlType
from conveyor.design.upstream import join_upstream
from conveyor.project import Project
from conveyor.sources import partition
from conveyor.sources.base import ColumnInfo, TableInfo
from conveyor.validate.names import name_notes
from conveyor.warehouse import engine_class

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


def comment(obj: object) -> str | None:
    """The upstream comment of a table or column, if the engine reflects one."""
    value = getattr(obj, "comment", None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def scalar(value: str) -> str:
    """A string as ruamel should write it: quoted when PyYAML would read it as something else."""
    if RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != STR_TAG:
        return SingleQuotedScalarString(value)
    return value


def flow(items: Iterable[str]) -> CommentedSeq:
    seq = CommentedSeq([scalar(i) for i in items])
    seq.fa.set_flow_style()
    return seq


def column_map(column: ColumnInfo, limit: DecimalLimit = DecimalLimit()) -> CommentedMap:
    choice = choose(column, limit)
    item = CommentedMap()
    item["name"] = scalar(column.name)
    if choice.type is None:
        item["skipped"] = True
    else:
        item["type"] = scalar(str(choice.type))
    if choice.not_null:
        item["not_null"] = True
    if (text := comment(column)) is not None:
        item["description"] = scalar(text)
    if choice.note is not None:
        item.yaml_add_eol_comment(choice.note, "skipped" if choice.type is None else "type")
    if choice.null_note is not None:
        item.yaml_add_eol_comment(choice.null_note, "name")
    return item


def unique_seq(unique: Sequence[Sequence[str]]) -> CommentedSeq:
    return CommentedSeq([flow(u) for u in unique])


def new_design(name: str, source: str, info: TableInfo, limit: DecimalLimit = DecimalLimit()) -> CommentedMap:
    """The design document for an upstream table (header comment included)."""
    doc = CommentedMap()
    doc["name"] = scalar(name)
    if (text := comment(info)) is not None:
        doc["description"] = scalar(text)
    doc["source_table"] = scalar(join_upstream(info.schema, info.name))
    doc["columns"] = CommentedSeq([column_map(c, limit) for c in info.columns])
    constraints = CommentedMap()
    if info.primary_key:
        constraints["primary_key"] = flow(info.primary_key)
    if info.unique:
        constraints["unique"] = unique_seq(info.unique)
    if constraints:
        doc["constraints"] = constraints
    split_by = suggest_split_by(info)
    if split_by is not None:
        doc["extract"] = CommentedMap(split_by=scalar(split_by))
    header = [f"generated by conveyor bootstrap from {source} {info.qualified}"]
    if info.row_estimate is not None and info.row_estimate > LARGE_TABLE_ROWS:
        suggested = min(32, math.ceil(info.row_estimate / 2_000_000))
        header.append(
            f"upstream had about {info.row_estimate:,} rows at bootstrap; the extractor picks partitions "
            f"itself (set extract.partitions, e.g. {suggested}, to fix the count)"
        )
    doc.yaml_set_start_comment("\n".join(header))
    return doc


def note_odd(plan: SourcePlan, table: str, columns: Iterable[ColumnInfo]) -> None:
    """Remember the columns a design holds without their exact type, for the one warning."""
    for column in columns:
        choice = choose(column, plan.limit)
        if choice.note is not None:
            shown = "skipped" if choice.type is None else f"as {choice.type}"
            plan.odd.append(f"{table}.{column.name} ({column.native_type}) {shown}")


def plan_create(project: Project, plan: SourcePlan, upstream: Upstream, info: TableInfo) -> None:
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
    text = dump(new_design(name, plan.name, info, plan.limit), DEFAULT_INDENT)
    note_odd(plan, name, info.columns)
    for note in name_notes(project, plan.target, upstream.name, [c.name for c in info.columns]):
        report.notes.append(note)
        plan.warnings.append(f'"{name}": {note}; validate and every run refuse it until then.')
    problem = check_dump(text)
    if problem is not None:
        report.action, report.path, report.error = "failed", None, problem
        report.notes.append("no design written")
    else:
        plan.writes.append(Write(path, text, report))
    plan.reports.append(report)
