"""A project on disk: ``conveyor.yaml`` plus ``schemas/<schema>/<table>.{yaml,sql}``.

:meth:`Project.load` reads everything, checks it, infers dependencies from the SQL and
orders the relations into a DAG. It collects every problem it finds before raising, so a
user fixes a broken project in one pass instead of one error at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from pydantic import ValidationError
from sqlglot import exp

import conveyor
from conveyor.config.secrets import check_no_inline_password, read_credentials_file, resolve
from conveyor.config.settings import EnvironmentConfig, ProjectSettings, SourceConfig
from conveyor.config.yamlfile import YamlDoc, load_yaml, validate
from conveyor.design.models import Kind, TableDesign
from conveyor.design.upstream import split_upstream
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
from conveyor.graph.sqldeps import SqlParseError, TableRef, is_own_catalog, parse_sql, referenced_tables
from conveyor.graph.sqldeps import resolve as resolve_ref

SETTINGS_FILE = "conveyor.yaml"
DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "redshift": "redshift"}
# upstream schema assumed when a design's source_table names only a table
MAX_SQL_BYTES = 1_000_000
"""A larger transformation is refused: parsing it would take minutes (sqlglot reads about 100 KB a second)."""
_DEFAULT_UPSTREAM_SCHEMA = {"sqlite": "main", "postgres": "public", "mysql": None, "lake": None}
#: the parse cache, relative to the project root (see :class:`_ParseCache`)
CACHE_FILE = Path(".conveyor") / "cache" / "project.json"


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
    references: list[TableRef] | None = None
    """Every table the SQL reads, with its position in the SQL file (None: no SQL, or it does not parse)."""
    sql_dependencies: list[str] = field(default_factory=list)
    """The relations the SQL reads; ``dependencies`` adds those of ``depends_on``."""
    external: list[str] = field(default_factory=list)
    """Tables outside the project the SQL reads: matched by ``external`` in conveyor.yaml, or catalog-qualified."""
    select_names: list[str] | None = None
    """The output column names when the query's select list is explicit (no ``*``, every expression named)."""
    unparsed: str | None = None
    """Why sqlglot cannot parse the SQL, which the warehouse may accept: it runs exactly as written, its
    names bound by the warehouse's search path, and its dependencies come from ``depends_on`` only."""

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
    broken: dict[str, Location] = field(default_factory=dict)
    """Relations (named after their path) whose design did not load, with the design's file."""
    catalogs: frozenset[str] = frozenset()
    """The default environment's own database names: ``db.schema.table`` with one of them is a
    relation of the project (see docs/transformations.md)."""
    warnings: list[ConveyorError] = field(default_factory=list)
    """Problems that do not stop the project from loading (SQL only the warehouse can parse)."""

    @classmethod
    def load(cls, root: Path | str = ".", *, cache: bool | None = None) -> Project:
        """Read and check the project in ``root``; raise ``ProjectError`` listing every problem.

        Args:
            root: the project folder (the one holding conveyor.yaml).
            cache: use the parse cache in ``.conveyor/cache/``: ``None`` reads it and writes it
                back only when ``.conveyor/`` exists already (so a first dry run leaves no trace),
                ``True`` also creates it, ``False`` ignores it.
        """
        return _Loader(Path(root).resolve(), cache).load()

    @classmethod
    def collect(cls, root: Path | str = ".", *, cache: bool | None = None) -> LoadResult:
        """Read the project as far as possible and return it with every problem, raising nothing.

        ``Project.load`` raises on the first problem list; ``conveyor validate`` uses this to go
        on checking what did load. Relations whose design failed are left out and listed in
        ``Project.broken``; references to them are not reported again as missing dependencies.
        """
        return _Loader(Path(root).resolve(), cache).collect()

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
        """``<upstream schema>.<table>``: the lake folder of a source relation before relations owned theirs.

        The lake reads a relation's old extracts there (only manifests of that relation).
        """
        schema, table = self.upstream_table(relation)
        return f"{schema}.{table}" if schema else table

    def upstream_table(self, relation: Relation) -> tuple[str | None, str]:
        """The upstream (schema, table) a source relation is extracted from."""
        if relation.design.source_table:
            return split_upstream(relation.design.source_table)
        source_type = self.settings.sources[relation.source or ""].type
        return _DEFAULT_UPSTREAM_SCHEMA.get(source_type), relation.table


@dataclass
class LoadResult:
    """What :meth:`Project.collect` found: the project as far as it loaded, and every problem.

    ``project`` is None when conveyor.yaml itself is missing or invalid (its problems are in
    ``problems``); otherwise it holds every relation whose design loaded.
    """

    project: Project | None
    problems: list[ConveyorError]


class _Loader:
    """Reads a project, collecting problems instead of stopping at the first."""

    def __init__(self, root: Path, cache: bool | None = None):
        self.root = root
        self.prefix = len(str(root)) + 1
        self.cache = _ParseCache(root, cache)
        self.problems: list[ConveyorError] = []
        self.warnings: list[ConveyorError] = []
        self.broken: dict[str, Location] = {}
        self.files: set[str] = set()

    def load(self) -> Project:
        doc, settings = self._settings()
        project = self._project(doc, settings)
        if self.problems:
            raise ProjectError(self.problems)
        return project

    def collect(self) -> LoadResult:
        try:
            doc, settings = self._settings()
        except ProjectError as exc:
            return LoadResult(None, list(exc.problems))
        except ConveyorError as exc:
            return LoadResult(None, [exc])
        project = self._project(doc, settings)
        return LoadResult(project, self.problems + self.warnings)

    def _settings(self) -> tuple[YamlDoc, ProjectSettings]:
        settings_path = self.root / SETTINGS_FILE
        if not settings_path.is_file():
            raise UserError(
                f"no {SETTINGS_FILE} in {self.root}.",
                hint="Run the command inside a project folder or pass --project DIR.",
                code="no-project",
            )
        doc = load_yaml(settings_path, SETTINGS_FILE)
        return doc, validate(ProjectSettings, doc, SETTINGS_FILE)

    def _project(self, doc: YamlDoc, settings: ProjectSettings) -> Project:
        environment = settings.environments[settings.environment_name(None)]
        dialect = DIALECTS[environment.type]
        catalogs = own_catalogs(environment)
        relations = self._designs(settings)
        self._sql(relations, dialect)
        self._dependencies(relations, settings, catalogs)
        dag = self._dag(relations)
        self._catalog_clashes(settings, doc, {r.schema for r in relations.values()})
        self._required_terms(settings, doc, dag)
        self._inline_passwords(settings, doc)
        self.cache.save()
        return Project(
            self.root, settings, doc, relations, dag, dialect, dict(self.broken), catalogs, list(self.warnings)
        )

    def _catalog_clashes(self, settings: ProjectSettings, doc: YamlDoc, schemas: set[str]) -> None:
        """DuckDB names a file's catalog after the file; a catalog named like a schema is ambiguous."""
        for name, env in settings.environments.items():
            catalog = env.database_name() if env.type == "duckdb" else None
            if catalog is not None and catalog in schemas:
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
                if self._matches_broken(term):
                    continue  # the design it needs is reported already
                self.problems.append(
                    ConfigError(
                        f"required: {exc.message}", location=doc.location(("required", index)), code="bad-required"
                    )
                )

    def _matches_broken(self, term: str) -> bool:
        pattern = term.strip("+")
        if not self.broken or pattern.startswith("tag:"):
            return False
        if "." not in pattern:
            return any(fnmatchcase(name.partition(".")[0], pattern) for name in self.broken)
        return any(fnmatchcase(name, pattern) for name in self.broken)

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
        self.files = _schema_files(self.root / "schemas")
        for path in sorted((f for f in self.files if f.endswith((".yaml", ".yml"))), key=_parts):
            relation = self._attempt(self._design, Path(path), source_schemas)
            if relation is not None:
                relations[relation.name] = relation
            else:
                self.broken[_path_name(path)] = Location(self._display(Path(path)))
        for text in sorted((f for f in self.files if f.endswith(".sql")), key=_parts):
            stem = text[: -len(".sql")]
            if stem + ".yaml" not in self.files and stem + ".yml" not in self.files:
                sql_path = Path(text)
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
        text = str(path)
        return text[self.prefix :] if text.startswith(str(self.root)) else str(path.relative_to(self.root))

    def _read_design(self, path: Path) -> tuple[YamlDoc, TableDesign]:
        """Parse and validate a design, or take it from the parse cache when its content is known."""
        display = self._display(path)
        try:
            digest = _digest(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read the design: {exc.strerror or exc}.", location=Location(display)) from None
        data = self.cache.design(digest)
        if data is not None:
            try:
                return _CachedDoc(path, data, display), TableDesign.model_validate(data)
            except ValidationError:
                pass  # a cache from other code: parse the file
        doc = load_yaml(path, display)
        design = validate(TableDesign, doc, "table design")
        self.cache.put_design(digest, doc.data, path)
        return doc, design

    def _design(self, path: Path, source_schemas: dict[str, str]) -> Relation:
        doc, design = self._read_design(path)
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
            if str(relation.sql_path) not in self.files:
                raise ConfigError(
                    f'the {kind} "{design.name}" has no SQL file.',
                    location=Location(self._display(path)),
                    hint=f"Create {self._display(relation.sql_path)} with one SELECT query.",
                    code="missing-sql",
                )
            if relation.sql_path.stat().st_size > MAX_SQL_BYTES:
                raise ConfigError(
                    f"the SQL file is larger than {MAX_SQL_BYTES:,} bytes, more than a query a person maintains.",
                    location=Location(self._display(relation.sql_path)),
                    hint="Split the query into several relations, or move the data it spells out into a source table.",
                    code="sql-parse",
                )
            try:
                relation.sql = relation.sql_path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ConfigError(
                    "the SQL file is not UTF-8 text.", location=Location(self._display(relation.sql_path))
                ) from None
        return relation

    def _sql(self, relations: dict[str, Relation], dialect: str) -> None:
        """Find the tables each query reads (and its output names), from the cache or by parsing it."""
        for relation in relations.values():
            if relation.sql is None or relation.sql_path is None:
                continue
            digest = _digest(relation.sql.encode("utf-8"))
            facts = self.cache.sql(dialect, digest)
            if facts is None:
                try:
                    tree = parse_sql(relation.sql, dialect)
                except SqlParseError as exc:
                    where = Location(self._display(relation.sql_path), exc.line, exc.column)
                    if exc.grammar and warehouse_may_accept(relation.sql, dialect):
                        self.warnings.append(_unparsed(relation, exc, dialect, where))
                        relation.unparsed, relation.references = exc.message, []
                        continue
                    self.problems.append(
                        ConfigError(
                            f'the SQL of "{relation.name}" does not parse ({dialect}): {exc.message}',
                            location=where,
                            hint="Fix the query; it must be exactly one SELECT statement.",
                            code="sql-parse",
                        )
                    )
                    continue
                facts = (referenced_tables(tree), select_names(tree))
                self.cache.put_sql(dialect, digest, *facts)
            relation.references, relation.select_names = facts

    def _dependencies(
        self, relations: dict[str, Relation], settings: ProjectSettings, catalogs: frozenset[str]
    ) -> None:
        known = set(relations)
        search_path = settings.defaults.search_path
        external: list[str] = list(getattr(settings, "external", None) or [])
        managed = {r.schema for r in relations.values()} | set(settings.source_schemas())
        managed |= {name.partition(".")[0] for name in self.broken}
        for relation in relations.values():
            if relation.references is None or relation.sql_path is None:
                continue
            name = relation.name
            deps: list[str] = []
            for ref in relation.references:
                if ref.catalog is not None and not is_own_catalog(ref.catalog, catalogs):
                    relation.external.append(".".join(p for p in (ref.catalog, ref.schema, ref.name) if p))
                    continue
                target = resolve_ref(ref, relation.schema, search_path, known, catalogs)
                if target is None:
                    continue
                where = Location(self._display(relation.sql_path), ref.line, ref.column)
                if target not in known:
                    if target in self.broken:
                        continue  # its design is broken and reported; "missing" would mislead
                    if is_external(target, external):
                        if target not in relation.external:
                            relation.external.append(target)
                        continue
                    self.problems.append(self._missing(relation, ref, target, known, managed, where))
                elif target == name:
                    self.problems.append(
                        DependencyError(
                            f"dependency cycle: {name} -> {name} (the query reads the relation it builds).",
                            location=where,
                            hint="Read another relation, or split this one in two.",
                            code="cycle",
                        )
                    )
                elif target not in deps:
                    deps.append(target)
            relation.sql_dependencies = list(deps)
            relation.dependencies = deps
        for relation in relations.values():
            for index, dep in enumerate(relation.design.depends_on):
                if dep not in known:
                    if dep in self.broken:
                        continue
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

    @staticmethod
    def _missing(
        relation: Relation, ref: TableRef, target: str, known: set[str], managed: set[str], where: Location
    ) -> DependencyError:
        """A reference to a table the project does not define: missing, or outside the managed schemas."""
        shown = f"{ref.schema}.{ref.name}" if ref.schema else ref.name
        schema = target.partition(".")[0]
        if schema not in managed:
            return DependencyError(
                f'"{relation.name}" reads "{shown}", from schema "{schema}", which this project does not manage.'
                + did_you_mean(target, known),
                location=where,
                hint=f'If the table is maintained outside Conveyor, add "{target}" (or "{schema}.*") to `external` '
                "in conveyor.yaml; otherwise fix the name.",
                code="external-dependency",
            )
        return DependencyError(
            f'"{relation.name}" reads "{shown}", which is not a relation of this project.'
            + did_you_mean(target, known),
            location=where,
            hint="Fix the name, or add a design for it under schemas/.",
            code="missing-dependency",
        )

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


# ------------------------------------------------------------------------------- helpers


def own_catalogs(environment: EnvironmentConfig) -> frozenset[str]:
    """The names SQL may give the environment's own database (``db.schema.table``); empty when unknown.

    DuckDB matches catalog names case-insensitively, so the lower-case name counts too.
    """
    name = environment.database_name()
    if name is None:
        return frozenset()
    return frozenset({name, name.lower()} if environment.type == "duckdb" else {name})


def warehouse_may_accept(sql: str, dialect: str) -> bool:
    """Whether a query sqlglot cannot parse may still be one the warehouse runs.

    DuckDB's own parser is at hand (no database needed): it decides. PostgreSQL's and
    Redshift's are not, so their text is given the benefit of the doubt; the warehouse
    reports a genuine mistake when the relation is built or compiled.
    """
    if dialect != "duckdb":
        return True
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return False
    return len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT


def _unparsed(relation: Relation, exc: SqlParseError, dialect: str, where: Location) -> ConfigError:
    return ConfigError(
        f'sqlglot cannot parse the SQL of "{relation.name}" ({dialect}): {exc.detail}. It runs exactly as '
        "written; Conveyor cannot see which relations it reads, so they come from depends_on only.",
        location=where,
        hint="If the query is wrong, fix it. If the warehouse accepts it, list the relations it reads in "
        "depends_on and qualify names of other schemas (validate --with-warehouse compiles it).",
        code="sql-unparsed",
    )


def is_external(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``"schema.table"`` matches an ``external`` pattern (a glob; a bare word is a schema)."""
    schema = name.partition(".")[0]
    return any(fnmatchcase(name, p) if "." in p else fnmatchcase(schema, p) for p in patterns)


def select_names(tree: exp.Expr) -> list[str] | None:
    """The output column names of a query whose select list is explicit, else None.

    Explicit means no ``*`` and every expression a column or aliased; for a set operation the
    names are those of its first query. Names are as written (quotes removed).
    """
    node: exp.Expr | None = tree
    while isinstance(node, exp.SetOperation | exp.Subquery):
        node = node.this
    if not isinstance(node, exp.Select):
        return None
    names: list[str] = []
    for item in node.expressions:
        if isinstance(item, exp.Alias):
            names.append(item.alias)
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Identifier):
            names.append(item.this.this)
        else:
            return None  # *, t.*, or an expression whose name the warehouse chooses
    return names


def _schema_files(folder: Path) -> set[str]:
    """The paths of the files in ``folder``'s subfolders (one directory listing per schema, no stat)."""
    found: set[str] = set()
    try:
        schemas = [entry for entry in os.scandir(folder) if entry.is_dir()]
    except OSError:
        return found
    for schema in schemas:
        try:
            found.update(entry.path for entry in os.scandir(schema.path) if entry.is_file())
        except OSError:
            continue
    return found


def _parts(path: str) -> list[str]:
    """Sort key of a schema file: (schema folder, file name), as paths compare."""
    return path.rsplit(os.sep, 2)[-2:]


def _path_name(path: str) -> str:
    """``"schema.table"`` for ``.../schemas/<schema>/<table>.<ext>``."""
    folder, _, file = path.rpartition(os.sep)
    return f"{folder.rpartition(os.sep)[2]}.{file.rpartition('.')[0]}"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _code_fingerprint() -> str:
    """Identifies the code that produced cached results: versions plus the parsing modules' stat."""
    from conveyor.design import models, types
    from conveyor.graph import sqldeps

    parts = [str(_ParseCache.FORMAT), conveyor.__version__, sqlglot.__version__, yaml.__version__]
    for module in (models, types, sqldeps):
        try:
            stat = os.stat(str(module.__file__))
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
        except (OSError, TypeError):
            parts.append("?")
    try:
        stat = os.stat(__file__)
        parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    except OSError:
        parts.append("?")
    return "|".join(parts)


class _CachedDoc(YamlDoc):
    """A design taken from the parse cache: its YAML node tree (for line numbers) is built only when asked."""

    def __init__(self, path: Path, data: Any, display: str):
        self.path = path
        self.display = display
        self.data = data
        self._node: yaml.Node | None = None
        self._composed = False

    @property
    def node(self) -> yaml.Node | None:
        if not self._composed:
            self._composed = True
            try:
                self._node = load_yaml(self.path, self.display).node
            except (ConveyorError, OSError):
                self._node = None
        return self._node

    @node.setter
    def node(self, value: yaml.Node | None) -> None:
        self._node, self._composed = value, True


class _ParseCache:
    """Parsed designs and SQL facts of earlier loads, keyed by the hash of each file's content.

    One JSON file, ``.conveyor/cache/project.json``: a key naming the code that wrote it
    (Conveyor, sqlglot and PyYAML versions, plus the parsing modules), the validated design
    data by content hash, and each query's table references and output names by dialect and
    content hash. Only files that loaded without problems are cached. A cache that is missing,
    unreadable, corrupt or from other code is ignored; one that cannot be written is skipped.
    Writing replaces the file atomically and keeps only the entries this load used.
    """

    FORMAT = 1

    def __init__(self, root: Path, mode: bool | None):
        self.path = root / CACHE_FILE
        self.enabled = mode is not False
        self.create = mode is True
        self.key = ""
        self.old_designs: dict[str, Any] = {}
        self.old_sql: dict[str, Any] = {}
        self.designs: dict[str, Any] = {}
        self.sql_facts: dict[str, Any] = {}
        self.dirty = False
        if self.enabled:
            self.key = _code_fingerprint()
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("key") != self.key:
            return
        designs, sql = data.get("designs"), data.get("sql")
        if isinstance(designs, dict) and isinstance(sql, dict):
            self.old_designs, self.old_sql = designs, sql

    def design(self, digest: str) -> dict[str, Any] | None:
        data = self.old_designs.get(digest)
        if not isinstance(data, dict):
            return None
        self.designs[digest] = data
        return data

    def put_design(self, digest: str, data: Any, path: Path) -> None:
        if not self.enabled:
            return
        try:
            if json.loads(json.dumps(data)) != data:
                return  # YAML values JSON cannot hold exactly (dates, non-string keys): not cached
            if _digest(path.read_bytes()) != digest:
                return  # the file changed while it was read
        except (TypeError, ValueError, OSError):
            return
        self.designs[digest] = data
        self.dirty = True

    def sql(self, dialect: str, digest: str) -> tuple[list[TableRef], list[str] | None] | None:
        entry = self.old_sql.get(f"{dialect}:{digest}")
        if not isinstance(entry, dict):
            return None
        try:
            refs = [TableRef(s, n, c, line, col) for s, n, c, line, col in entry["refs"]]
            names = entry["names"]
            if names is not None and not all(isinstance(n, str) for n in names):
                return None
        except (KeyError, TypeError, ValueError):
            return None
        self.sql_facts[f"{dialect}:{digest}"] = entry
        return refs, names

    def put_sql(self, dialect: str, digest: str, refs: list[TableRef], names: list[str] | None) -> None:
        if not self.enabled:
            return
        rows = [[r.schema, r.name, r.catalog, r.line, r.column] for r in refs]
        self.sql_facts[f"{dialect}:{digest}"] = {"refs": rows, "names": names}
        self.dirty = True

    def save(self) -> None:
        """Write the entries this load used, if anything changed and the cache may be written."""
        if not self.enabled:
            return
        unchanged = len(self.designs) == len(self.old_designs) and len(self.sql_facts) == len(self.old_sql)
        if not self.dirty and unchanged:
            return
        if not self.create and not self.path.parent.parent.is_dir():
            return  # no .conveyor/ yet: a command that writes nothing else leaves no trace
        data = {"key": self.key, "designs": self.designs, "sql": self.sql_facts}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
