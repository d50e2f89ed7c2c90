"""Semantic checks of one table design, beyond what its schema (the pydantic model) says.

Each check takes the project and one relation and yields problems; :data:`DESIGN_CHECKS`
lists them in the order they run. They never raise: a design they cannot judge (e.g. a
CTAS without columns) yields nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from conveyor.design.durations import parse_duration
from conveyor.design.models import ColumnDesign
from conveyor.design.types import parse_type
from conveyor.design.upstream import ambiguous, join_upstream
from conveyor.errors import ConveyorError, did_you_mean
from conveyor.extract.incremental import check_cursor_type, parse_lag
from conveyor.project import Project, Relation
from conveyor.sources.partition import check_split_type
from conveyor.validate.datatests import data_tests
from conveyor.validate.problems import Problem, problem
from conveyor.validate.seeds import seed_values
from conveyor.warehouse import engine_class
from conveyor.warehouse.base import Warehouse
from conveyor.warehouse.dialect import dialect as dialect_of

Check = Callable[[Project, Relation], Iterator[Problem]]
Loc = tuple[str | int, ...]

_VIEW_ONLY_KEYS = ("type", "not_null", "skipped", "identity")


@dataclass(frozen=True)
class ColumnUse:
    """A place in a design that names a column: a key, the split key, the cursor, an attribute."""

    loc: Loc
    column: str
    what: str


def _columns(relation: Relation) -> dict[str, tuple[int, ColumnDesign]]:
    return {c.name: (i, c) for i, c in enumerate(relation.design.columns)}


def _not_null(relation: Relation, column: ColumnDesign) -> bool:
    """Declared not null, or part of the primary key (whose DDL says NOT NULL)."""
    return column.not_null or column.name in relation.design.constraints.primary_key


def _say(code: str, relation: Relation, loc: Loc, message: str, hint: str | None = None) -> Problem:
    return problem(code, message, location=relation.location(*loc), hint=hint, relation=relation.name)


def upstream_name(project: Project, relation: Relation) -> Iterator[Problem]:
    """A source_table with more than one unquoted dot cannot say where the schema ends."""
    text = relation.design.source_table
    if relation.kind != "source" or not text or not ambiguous(text):
        return
    schema, _, table = text.partition(".")
    rest_schema, _, last = text.rpartition(".")
    yield _say(
        "upstream-name-ambiguous",
        relation,
        ("source_table",),
        f'source_table "{text}" of "{relation.name}" has more than one dot, so it does not say which one ends '
        "the schema.",
        hint=f"Quote the part that holds a dot: {join_upstream(schema, table)} (table {table}) or "
        f"{join_upstream(rest_schema, last)} (schema {rest_schema}).",
    )


def view_columns(project: Project, relation: Relation) -> Iterator[Problem]:
    """A view's columns carry only name and description; its constraints are never checked."""
    if relation.kind != "view":
        return
    for index, column in enumerate(relation.design.columns):
        given = [key for key in _VIEW_ONLY_KEYS if getattr(column, key) not in (None, False)]
        if given:
            yield _say(
                "view-column",
                relation,
                ("columns", index, given[0]),
                f'column "{column.name}" of the view "{relation.name}" has {", ".join(given)}; '
                "a view's columns carry only name and description.",
                hint="Remove it: a view's types come from its query. Use kind: ctas for a typed table.",
            )
    constraints = relation.design.constraints
    if constraints.primary_key or constraints.unique or constraints.natural_key:
        yield _say(
            "view-constraints",
            relation,
            ("constraints",),
            f'the view "{relation.name}" has constraints, but only tables are checked before publishing.',
            hint="Remove them, or make the relation a ctas.",
        )


def column_uses(relation: Relation) -> list[ColumnUse]:
    """Every place in the design that names a column."""
    design = relation.design
    uses = [
        ColumnUse(("constraints", "primary_key", i), c, "primary key")
        for i, c in enumerate(design.constraints.primary_key)
    ]
    for u, columns in enumerate(design.constraints.unique):
        uses += [ColumnUse(("constraints", "unique", u, i), c, "unique constraint") for i, c in enumerate(columns)]
    uses += [
        ColumnUse(("constraints", "natural_key", i), c, "natural key")
        for i, c in enumerate(design.constraints.natural_key)
    ]
    if design.extract.split_by is not None:
        uses.append(ColumnUse(("extract", "split_by"), design.extract.split_by, "extract.split_by"))
    if design.extract.incremental is not None:
        cursor = design.extract.incremental.cursor
        uses.append(ColumnUse(("extract", "incremental", "cursor"), cursor, "incremental cursor"))
    for key, value in design.attributes.items():
        names: list[str] = []
        if key == "distkey" and isinstance(value, str):
            names = [value]
        elif key == "sortkey":
            names = [value] if isinstance(value, str) else list(value)
            names = [n for n in names if n.lower() != "auto"]
        elif key.startswith("encode."):
            names = [key.removeprefix("encode.")]
        uses += [ColumnUse(("attributes", key), n, f'attribute "{key}"') for n in names]
    return uses


def named_columns(project: Project, relation: Relation) -> Iterator[Problem]:
    """Keys, split_by, the incremental cursor and attributes name existing, loaded columns."""
    columns = _columns(relation)
    known: list[str] = list(columns) or list(relation.select_names or [])
    if relation.design.partial_columns:
        if relation.select_names is None:
            return  # the warehouse check compares with its output
        known = [*columns, *(name for name in relation.select_names if name not in columns)]
    if not known:
        return  # a CTAS or view without columns: the warehouse check compares with its output
    for use in column_uses(relation):
        if use.column not in known:
            where = "the design" if columns else "the query's select list"
            yield _say(
                "unknown-column",
                relation,
                use.loc,
                f'the {use.what} of "{relation.name}" names column "{use.column}", which is not in {where}.'
                + did_you_mean(use.column, known),
                hint="Fix the name, or add the column to the design's columns.",
            )
        elif use.column in columns and columns[use.column][1].skipped:
            yield _say(
                "skipped-column",
                relation,
                use.loc,
                f'the {use.what} of "{relation.name}" names column "{use.column}", which is skipped '
                "(not extracted, not loaded).",
                hint="Use another column, or stop skipping this one.",
            )


def split_by(project: Project, relation: Relation) -> Iterator[Problem]:
    """A split key is not null and of a type that splits into ranges."""
    name = relation.design.extract.split_by
    found = _columns(relation).get(name or "")
    if relation.kind != "source" or found is None or found[1].skipped:
        return
    column = found[1]
    if not _not_null(relation, column):
        yield _say(
            "split-by-nullable",
            relation,
            ("extract", "split_by"),
            f'extract.split_by of "{relation.name}" is "{name}", which may be NULL; the first partition reads '
            "every row whose key is NULL, so many NULLs make it larger than the others.",
            hint=f'Mark "{name}" not_null (if it is NOT NULL upstream), or split by a column that is never NULL.',
        )
    if column.type is not None:
        try:
            check_split_type(parse_type(column.type), relation.name, column.name)
        except ConveyorError as exc:  # the check the extract makes
            yield _say("split-by-type", relation, ("extract", "split_by"), exc.message, exc.hint)


def source_types(project: Project, relation: Relation) -> Iterator[Problem]:
    """Every loaded column of a source table has a type: the extract reads values as that type."""
    if relation.kind != "source":
        return
    for index, column in enumerate(relation.design.columns):
        if column.type is None and not column.skipped:
            yield _say(
                "missing-type",
                relation,
                ("columns", index),
                f'column "{column.name}" of the source table "{relation.name}" has no type.',
                hint="Add its design type (conveyor bootstrap writes them), or mark it skipped: true.",
            )


def source_partial_columns(project: Project, relation: Relation) -> Iterator[Problem]:
    """A source table's design is what is extracted: it lists every column."""
    if relation.kind == "source" and relation.design.partial_columns:
        yield _say(
            "source-partial-columns",
            relation,
            ("partial_columns",),
            f'the source table "{relation.name}" has partial_columns, but a source table\'s design lists every '
            "column that is extracted.",
            hint="Remove partial_columns; mark the columns you do not want skipped: true.",
        )


def source_depends_on(project: Project, relation: Relation) -> Iterator[Problem]:
    """Source tables are loaded from the lake; they depend on nothing in the warehouse."""
    if relation.kind == "source" and relation.design.depends_on:
        yield _say(
            "source-depends-on",
            relation,
            ("depends_on",),
            f'the source table "{relation.name}" has depends_on, but source tables are loaded, not built.',
            hint="Remove depends_on (it applies to CTAS and views).",
        )


def identity_not_null(project: Project, relation: Relation) -> Iterator[Problem]:
    """An identity column must be not_null."""
    for index, column in enumerate(relation.design.columns):
        if column.identity and not _not_null(relation, column):
            yield _say(
                "identity-nullable",
                relation,
                ("columns", index, "identity"),
                f'column "{column.name}" of "{relation.name}" is an identity column but not not_null.',
                hint="Add not_null: true to it.",
            )


def incremental(project: Project, relation: Relation) -> Iterator[Problem]:
    """The incremental cursor orders rows exactly, and the lag fits its type."""
    settings = relation.design.extract.incremental
    if relation.kind != "source" or settings is None:
        return
    found = _columns(relation).get(settings.cursor)
    if found is None or found[1].skipped or found[1].type is None:
        return  # reported by named_columns
    sql_type = parse_type(found[1].type)
    try:
        check_cursor_type(sql_type, relation.name, settings.cursor)
    except ConveyorError as exc:
        yield _say("cursor-type", relation, ("extract", "incremental", "cursor"), exc.message, exc.hint)
        return
    try:
        parse_lag(settings.lag, sql_type, relation.name)
    except ConveyorError as exc:
        yield _say("bad-lag", relation, ("extract", "incremental", "lag"), exc.message, exc.hint)


def extract_on_derived(project: Project, relation: Relation) -> Iterator[Problem]:
    """Extract settings on a CTAS or view do nothing."""
    if relation.kind == "source":
        return
    given = [key for key in ("extract", "source_table") if key in (relation.doc.data or {})]
    for key in given:
        yield _say(
            "extract-on-derived",
            relation,
            (key,),
            f'the {relation.kind} "{relation.name}" has {key}, which applies to source tables only and is ignored.',
            hint=f"Remove {key}.",
        )


def freshness(project: Project, relation: Relation) -> Iterator[Problem]:
    """Freshness thresholds are durations, warn_after is not past error_after, and only source tables have one."""
    settings = relation.design.freshness
    if settings is None:
        return
    if relation.kind != "source":
        yield _say(
            "freshness-on-derived",
            relation,
            ("freshness",),
            f'the {relation.kind} "{relation.name}" has freshness, which applies to source tables only and is ignored.',
            hint="Remove freshness, or give it to the source tables it reads.",
        )
        return
    parsed = {}
    for key in ("warn_after", "error_after"):
        text = getattr(settings, key)
        try:
            parsed[key] = None if text is None else parse_duration(text)
        except ValueError as exc:
            yield _say("bad-freshness", relation, ("freshness", key), f'freshness.{key} of "{relation.name}": {exc}.')
    warn, error = parsed.get("warn_after"), parsed.get("error_after")
    if warn is not None and error is not None and warn > error:
        yield _say(
            "freshness-order",
            relation,
            ("freshness", "warn_after"),
            f'freshness.warn_after of "{relation.name}" ({settings.warn_after}) is longer than its error_after '
            f"({settings.error_after}), so it never warns.",
            hint="Make warn_after the shorter one.",
        )


def redshift_attributes(project: Project, relation: Relation) -> Iterator[Problem]:
    """Attributes are checked by the warehouse that uses them (Redshift) when an environment is one.

    Redshift is the one warehouse with layout attributes today; a second one would add a check
    of its own here."""
    if not relation.design.attributes:
        return
    if not any(dialect_of(env.type).LAYOUT_ATTRIBUTES for env in project.settings.environments.values()):
        return
    from conveyor.warehouse.redshift.ddl import redshift_attributes as check

    try:
        check(relation.design)
    except ConveyorError as exc:
        yield _say("bad-attribute", relation, ("attributes",), exc.message, exc.hint)


def warehouse_types(project: Project, relation: Relation, only: str | None = None) -> Iterator[Problem]:
    """Every column's type is one each environment's (or environment ``only``'s) warehouse can hold."""
    environments = project.settings.environments
    if only is not None:
        environments = {only: environments[only]} if only in environments else {}
    for index, column in enumerate(relation.design.columns):
        if column.type is None or column.skipped or relation.kind == "view":
            continue
        sql_type = parse_type(column.type)
        if Warehouse.type_problem(sql_type) is None:
            continue  # every engine holds it: no need to import the engines
        for env_name, env in sorted(environments.items()):
            why = engine_class(env.type).type_problem(sql_type)
            if why is not None:
                yield _say(
                    "type-unsupported",
                    relation,
                    ("columns", index, "type"),
                    f'column "{column.name}" of "{relation.name}" has type {sql_type}, which the {env.type} '
                    f'environment "{env_name}" cannot hold ({why}).',
                    hint="Declare `type: text` (every digit kept) or a narrower decimal (each value checked at "
                    "extract); see docs/types.md.",
                )
                break


DESIGN_CHECKS: list[Check] = [
    data_tests,
    upstream_name,
    view_columns,
    source_types,
    named_columns,
    split_by,
    source_depends_on,
    source_partial_columns,
    identity_not_null,
    warehouse_types,
    incremental,
    extract_on_derived,
    redshift_attributes,
    seed_values,
    freshness,
]
