"""A project on disk: ``conveyor.yaml`` plus ``schemas/<schema>/<table>.{yaml,sql}``.

:meth:`Project.load` reads everything, checks it, infers dependencies from the SQL and
orders the relations into a DAG. It collects every problem it finds before raising, so a
user fixes a broken project in one pass instead of one error at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.config.secrets import check_no_inline_password, read_credentials_file, resolve
from conveyor.config.settings import EnvironmentConfig, ProjectSettings, SourceConfig
from conveyor.config.yamlfile import YamlDoc, load_yaml, validate
from conveyor.design.models import Kind, TableDesign
from conveyor.errors import (
    ConfigError,
    ConveyorError,
    DependencyError,
    Location,
    ProjectError,
    SecretError,
    SelectionError,
    UserError,
    did_you_mean,
)
from conveyor.graph.dag import Dag, Node
from conveyor.graph.selection import select
from conveyor.graph.sqldeps import SqlParseError, parse_sql, referenced_tables
from conveyor.graph.sqldeps import resolve as resolve_ref

SETTINGS_FILE = "conveyor.yaml"
DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "redshift": "redshift"}
# upstream schema assumed when a design's source_table names only a table
_DEFAULT_UPSTREAM_SCHEMA = {"sqlite": "main", "postgres": "public", "mysql": None, "lake": None}


@dataclass
class Relation:
    """One relation of the project, with everything needed to extract, load or build it."""

    design: TableDesign
    doc: YamlDoc
    kind: Kind
    sql: str | None = None
    sql_path: Path | None = None
    source: str | None = None
    dependencies: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.design.name

    @property
    def schema(self) -> str:
        return self.design.schema_name

    @property
    def table(self) -> str:
        return self.design.table_name

    def location(self, *loc: str | int) -> Location:
        """file:line of a key in this relation's design."""
        return self.doc.location(tuple(loc))


@dataclass
class Project:
    """A loaded, checked project. Build one with :meth:`Project.load`."""

    root: Path
    settings: ProjectSettings
    settings_doc: YamlDoc
    relations: dict[str, Relation]
    dag: Dag
    dialect: str

    @classmethod
    def load(cls, root: Path | str = ".") -> Project:
        """Read and check the project in ``root``; raise ``ProjectError`` listing every problem."""
        return _Loader(Path(root).resolve()).load()

    def select(self, terms: Sequence[str] = ()) -> list[Relation]:
        """Relations matching selection terms, in execution order."""
        return [self.relations[name] for name in select(self.dag, list(terms))]

    def path(self, value: str) -> Path:
        """A path from the settings, relative to the project root unless absolute."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def credentials(self) -> dict[str, str]:
        return read_credentials_file(self.path(self.settings.credentials_file))

    def resolve_dsn(self, dsn: str, loc: tuple[str | int, ...]) -> str:
        """Resolve ``${VAR}`` references in a DSN found at ``loc`` in conveyor.yaml."""
        where = self.settings_doc.location(loc)
        check_no_inline_password(dsn, where)
        creds_path = self.path(self.settings.credentials_file)
        return resolve(dsn, where=where, credentials=self.credentials, credentials_path=creds_path)

    def source_config(self, name: str) -> SourceConfig:
        return self.settings.sources[name]

    def source_dsn(self, name: str) -> str:
        return self.resolve_dsn(self.settings.sources[name].dsn, ("sources", name, "dsn"))

    def environment(self, requested: str | None = None) -> tuple[str, EnvironmentConfig]:
        """The named (or default) environment; an unknown name is a user error."""
        name = self.settings.environment_name(requested)
        if name not in self.settings.environments:
            known = list(self.settings.environments)
            raise UserError(
                f'environment "{name}" is not defined in conveyor.yaml.' + did_you_mean(name, known),
                hint=f"Known environments: {', '.join(known)}.",
            )
        return name, self.settings.environments[name]

    def environment_dsn(self, name: str) -> str:
        return self.resolve_dsn(self.settings.environments[name].dsn, ("environments", name, "dsn"))

    def lake_table(self, relation: Relation) -> str:
        """The folder name of a source relation in the lake: ``<upstream schema>.<table>``."""
        schema, table = self.upstream_table(relation)
        return f"{schema}.{table}" if schema else table

    def upstream_table(self, relation: Relation) -> tuple[str | None, str]:
        """The upstream (schema, table) a source relation is extracted from."""
        if relation.design.source_table:
            schema, _, table = relation.design.source_table.rpartition(".")
            return (schema or None), table
        source_type = self.settings.sources[relation.source or ""].type
        return _DEFAULT_UPSTREAM_SCHEMA.get(source_type), relation.table


class _Loader:
    """Reads a project, collecting problems instead of stopping at the first."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[ConveyorError] = []

    def load(self) -> Project:
        settings_path = self.root / SETTINGS_FILE
        if not settings_path.is_file():
            raise UserError(
                f"no {SETTINGS_FILE} in {self.root}.",
                hint="Run the command inside a project folder or pass --project DIR.",
                code="no-project",
            )
        doc = load_yaml(settings_path, SETTINGS_FILE)
        settings = validate(ProjectSettings, doc, SETTINGS_FILE)
        env_type = settings.environments[settings.environment_name(None)].type
        dialect = DIALECTS[env_type]
        relations = self._designs(settings)
        self._sql(relations, dialect)
        self._dependencies(relations, settings)
        dag = self._dag(relations)
        self._catalog_clashes(settings, doc, {r.schema for r in relations.values()})
        self._required_terms(settings, doc, dag)
        self._inline_passwords(settings, doc)
        if self.problems:
            raise ProjectError(self.problems)
        return Project(self.root, settings, doc, relations, dag, dialect)

    def _catalog_clashes(self, settings: ProjectSettings, doc: YamlDoc, schemas: set[str]) -> None:
        """DuckDB names a file's catalog after the file; a catalog named like a schema is ambiguous."""
        for name, env in settings.environments.items():
            if env.type != "duckdb" or "${" in env.dsn:
                continue
            # duckdb names a file's catalog after its name, without a leading dot, up to the first dot
            catalog = Path(env.dsn.removeprefix("duckdb:///")).name.lstrip(".").split(".")[0]
            if catalog in schemas:
                self.problems.append(
                    ConfigError(
                        f'the DuckDB file of environment "{name}" is named "{catalog}", like the schema "{catalog}"; '
                        f'DuckDB would not know whether "{catalog}.x" means the database or the schema.',
                        location=doc.location(("environments", name, "dsn")),
                        hint="Rename the file, e.g. warehouse/" + name + ".duckdb.",
                        code="catalog-clash",
                    )
                )

    def _required_terms(self, settings: ProjectSettings, doc: YamlDoc, dag: Dag) -> None:
        """A `required` term that matches nothing would only surface after a failure."""
        for index, term in enumerate(settings.required):
            try:
                select(dag, [term])
            except SelectionError as exc:
                self.problems.append(
                    ConfigError(
                        f"required: {exc.message}", location=doc.location(("required", index)), code="bad-required"
                    )
                )

    def _inline_passwords(self, settings: ProjectSettings, doc: YamlDoc) -> None:
        """Every DSN in conveyor.yaml, used by this command or not, keeps its secrets out of git."""
        places: list[tuple[tuple[str | int, ...], str]] = [(("tracking", "dsn"), settings.tracking.dsn)]
        places += [(("sources", n, "dsn"), c.dsn) for n, c in settings.sources.items()]
        places += [(("environments", n, "dsn"), c.dsn) for n, c in settings.environments.items()]
        for loc, dsn in places:
            try:
                check_no_inline_password(dsn, doc.location(loc))
            except SecretError as exc:
                self.problems.append(exc)

    def _attempt(self, action: Callable[..., Relation], *args: Any) -> Relation | None:
        try:
            return action(*args)
        except ProjectError as exc:
            self.problems.extend(exc.problems)
        except ConveyorError as exc:
            self.problems.append(exc)
        return None

    def _designs(self, settings: ProjectSettings) -> dict[str, Relation]:
        relations: dict[str, Relation] = {}
        source_schemas = settings.source_schemas()
        schemas_dir = self.root / "schemas"
        for path in sorted([*schemas_dir.glob("*/*.yaml"), *schemas_dir.glob("*/*.yml")]):
            relation = self._attempt(self._design, path, source_schemas)
            if relation is not None:
                relations[relation.name] = relation
        for sql_path in sorted(schemas_dir.glob("*/*.sql")):
            if not sql_path.with_suffix(".yaml").exists() and not sql_path.with_suffix(".yml").exists():
                self.problems.append(
                    ConfigError(
                        "a SQL file without a table design.",
                        location=Location(self._display(sql_path)),
                        hint=f"Create {self._display(sql_path.with_suffix('.yaml'))} "
                        "with name and kind (ctas or view).",
                        code="sql-without-design",
                    )
                )
        return relations

    def _display(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def _design(self, path: Path, source_schemas: dict[str, str]) -> Relation:
        doc = load_yaml(path, self._display(path))
        design = validate(TableDesign, doc, "table design")
        expected = f"{path.parent.name}.{path.stem}"
        if design.name != expected:
            raise ConfigError(
                f'the design is named "{design.name}" but its path says "{expected}".',
                location=doc.location(("name",)),
                hint=f"Rename the file to schemas/{design.schema_name}/{design.table_name}.yaml "
                f'or set name: "{expected}".',
                code="name-mismatch",
            )
        source = source_schemas.get(design.schema_name)
        kind = design.kind or ("source" if source else "ctas")
        if source and kind != "source":
            raise ConfigError(
                f'"{design.name}" is a {kind} in the schema of source "{source}".',
                location=doc.location(("kind",)),
                hint="Source schemas hold only source tables; move it to a transformation schema.",
                code="wrong-schema-kind",
            )
        if not source and kind == "source":
            known = ", ".join(sorted(source_schemas)) or "none"
            raise ConfigError(
                f'"{design.name}" is a source table but schema "{design.schema_name}" belongs to no source.',
                location=doc.location(("kind",)),
                hint=f"Source schemas: {known}. Set target_schema on a source, or use kind: ctas or view.",
                code="wrong-schema-kind",
            )
        relation = Relation(design, doc, kind, source=source)
        if kind != "source":
            relation.sql_path = path.with_suffix(".sql")
            if not relation.sql_path.is_file():
                raise ConfigError(
                    f'the {kind} "{design.name}" has no SQL file.',
                    location=Location(self._display(path)),
                    hint=f"Create {self._display(relation.sql_path)} with one SELECT query.",
                    code="missing-sql",
                )
            relation.sql = relation.sql_path.read_text(encoding="utf-8")
        return relation

    def _sql(self, relations: dict[str, Relation], dialect: str) -> None:
        self.trees = {}
        for relation in relations.values():
            if relation.sql is None or relation.sql_path is None:
                continue
            try:
                self.trees[relation.name] = parse_sql(relation.sql, dialect)
            except SqlParseError as exc:
                where = Location(self._display(relation.sql_path), exc.line, exc.column)
                self.problems.append(
                    ConfigError(
                        f'the SQL of "{relation.name}" does not parse ({dialect}): {exc.message}',
                        location=where,
                        hint="Fix the query; it must be exactly one SELECT statement.",
                        code="sql-parse",
                    )
                )

    def _dependencies(self, relations: dict[str, Relation], settings: ProjectSettings) -> None:
        known = set(relations)
        search_path = settings.defaults.search_path
        for name, tree in self.trees.items():
            relation = relations[name]
            assert relation.sql_path is not None
            deps: list[str] = []
            for ref in referenced_tables(tree):
                if ref.catalog is not None:
                    continue
                target = resolve_ref(ref, relation.schema, search_path, known)
                if target is None:
                    continue
                if target not in known:
                    shown = f"{ref.schema}.{ref.name}" if ref.schema else ref.name
                    self.problems.append(
                        DependencyError(
                            f'"{name}" reads "{shown}", which is not a relation of this project.'
                            + did_you_mean(target, known),
                            location=Location(self._display(relation.sql_path), ref.line, ref.column),
                            hint="Fix the name, or add a design for it under schemas/.",
                            code="missing-dependency",
                        )
                    )
                elif target == name:
                    self.problems.append(
                        DependencyError(
                            f"dependency cycle: {name} -> {name} (the query reads the relation it builds).",
                            location=Location(self._display(relation.sql_path), ref.line, ref.column),
                            hint="Read another relation, or split this one in two.",
                            code="cycle",
                        )
                    )
                elif target not in deps:
                    deps.append(target)
            relation.dependencies = deps
        for relation in relations.values():
            for index, dep in enumerate(relation.design.depends_on):
                if dep not in known:
                    self.problems.append(
                        DependencyError(
                            f'"{relation.name}" depends on "{dep}", which is not a relation of this project.'
                            + did_you_mean(dep, known),
                            location=relation.location("depends_on", index),
                            hint="Fix the name in depends_on.",
                            code="missing-dependency",
                        )
                    )
                elif dep not in relation.dependencies:
                    relation.dependencies.append(dep)

    def _dag(self, relations: dict[str, Relation]) -> Dag:
        nodes = [Node(r.name, r.kind, frozenset(r.design.tags)) for r in relations.values()]
        edges = [(dep, r.name) for r in relations.values() for dep in r.dependencies if dep in relations]
        try:
            return Dag(nodes, edges)
        except DependencyError as exc:
            first = re.search(r"cycle: (\S+)", exc.message)
            relation = relations.get(first.group(1)) if first else None
            where = Location(self._display(relation.sql_path)) if relation and relation.sql_path else None
            code = "cycle" if first else "dependency"
            self.problems.append(DependencyError(exc.message, location=where, hint=exc.hint, code=code))
            return Dag(nodes, [])
