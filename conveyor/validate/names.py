"""Names a warehouse cannot hold as written: too long for PostgreSQL, equal but for case in DuckDB.

PostgreSQL (and Redshift) truncate identifiers longer than NAMEDATALEN - 1 bytes (63; Redshift
127) without an error, so a 64-byte MariaDB table or column name would be loaded under another
name, and two long names could become one. A schema name also carries the build's suffixes
(``<schema>$staging``, ``<schema>$backup``), so it has 8 bytes less. DuckDB's identifiers are
case-insensitive: two columns (or relations) that differ only in case are one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from conveyor.project import Project, Relation
from conveyor.validate.problems import Problem, problem
from conveyor.warehouse.dialect import dialect as dialect_of

SCHEMA_SUFFIX = len("$staging")


def _too_long(name: str, limit: int) -> bool:
    return len(name.encode("utf-8")) > limit


def check_names(project: Project, relations: Sequence[Relation], environments: Sequence[str]) -> Iterator[Problem]:
    """Every name of ``relations`` that an environment's warehouse would change or merge."""
    engines = {project.settings.environments[e].type: e for e in environments if e in project.settings.environments}
    for engine, env in engines.items():
        habits = dialect_of(engine)
        if habits.MAX_IDENTIFIER is not None:
            yield from _lengths(relations, engine, env, habits.MAX_IDENTIFIER)
        if habits.COLUMNS_CASE_INSENSITIVE:
            yield from _cases(relations, engine, env)


def _lengths(relations: Sequence[Relation], engine: str, env: str, limit: int) -> Iterator[Problem]:
    said: set[str] = set()
    where = f'the {engine} environment "{env}"'
    for relation in relations:
        if relation.schema not in said and _too_long(relation.schema, limit - SCHEMA_SUFFIX):
            said.add(relation.schema)
            yield problem(
                "name-too-long",
                f'the schema name "{relation.schema}" is longer than {limit - SCHEMA_SUFFIX} bytes, which {where} '
                f"cannot hold with its $staging suffix ({engine} keeps {limit}).",
                location=relation.location("name"),
                hint="Rename the schema folder (and the source's target_schema) to a shorter name.",
                relation=relation.name,
            )
        if _too_long(relation.table, limit):
            yield problem(
                "name-too-long",
                f'the table name of "{relation.name}" is longer than {limit} bytes; {where} would cut it short.',
                location=relation.location("name"),
                hint="Give the design a shorter name (rename the file and its name:); for a source table, "
                "source_table keeps the upstream name.",
                relation=relation.name,
            )
        for index, column in enumerate(relation.design.columns):
            if not column.skipped and _too_long(column.name, limit):
                yield problem(
                    "name-too-long",
                    f'column "{column.name}" of "{relation.name}" is longer than {limit} bytes; {where} would cut '
                    "it short.",
                    location=relation.location("columns", index, "name"),
                    hint="Rename it: skip the column (skipped: true) and select it under a shorter name in a CTAS, "
                    "or rename it upstream.",
                    relation=relation.name,
                )


def _cases(relations: Sequence[Relation], engine: str, env: str) -> Iterator[Problem]:
    for relation in relations:
        seen: dict[str, str] = {}
        for index, column in enumerate(relation.design.columns):
            if column.skipped:
                continue
            other = seen.setdefault(column.name.casefold(), column.name)
            if other != column.name:
                yield problem(
                    "name-case-clash",
                    f'columns "{other}" and "{column.name}" of "{relation.name}" differ only in case, which the '
                    f'{engine} environment "{env}" cannot tell apart.',
                    location=relation.location("columns", index, "name"),
                    hint="Skip one of them (skipped: true), or rename it upstream.",
                    relation=relation.name,
                )


def name_notes(project: Project, schema: str, table: str, columns: Sequence[str]) -> list[str]:
    """For bootstrap: what the project's environments would do to a new design's names, with the fix."""
    notes: list[str] = []
    for env, config in project.settings.environments.items():
        limit = dialect_of(config.type).MAX_IDENTIFIER
        if limit is None:
            continue
        where = f'the {config.type} environment "{env}" keeps {limit} bytes of a name'
        if _too_long(table, limit):
            notes.append(
                f"the table name is longer than {limit} bytes and {where}: give the design a shorter name "
                "(rename its file and name:; source_table keeps the upstream name)"
            )
        long = [c for c in columns if _too_long(c, limit)]
        if long:
            notes.append(
                f"column(s) {', '.join(long)} are longer than {limit} bytes and {where}: skip them "
                "(skipped: true) and select them under shorter names in a CTAS, or rename them upstream"
            )
    if any(dialect_of(config.type).COLUMNS_CASE_INSENSITIVE for config in project.settings.environments.values()):
        seen: dict[str, str] = {}
        for column in columns:
            other = seen.setdefault(column.casefold(), column)
            if other != column:
                notes.append(
                    f'columns "{other}" and "{column}" differ only in case, which DuckDB cannot tell apart: '
                    "skip one of them (skipped: true), or rename it upstream"
                )
    return notes
