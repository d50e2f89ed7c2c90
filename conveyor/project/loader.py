"""Reading a project from disk: conveyor.yaml, every design and query, dependencies and the DAG,
collecting every problem (each with file:line) instead of stopping at the first.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Callable, Iterator, Sequence
from difflib import get_close_matches
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from conveyor.config.secrets import check_no_inline_password
from conveyor.config.settings import EnvironmentConfig, ProjectSettings
from conveyor.config.yamlfile import YamlDoc, load_yaml, validate
from conveyor.design.models import TableDesign
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
from conveyor.graph.refs import SqlParseError, TableRef, is_own_catalog
from conveyor.graph.refs import resolve as resolve_ref
from conveyor.graph.selection import select
from conveyor.project.cache import CachedDoc, ParseCache, content_digest
from conveyor.project.relation import Relation, select_names
from conveyor.warehouse.dialect import dialect as dialect_of

SETTINGS_FILE = "conveyor.yaml"
DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "redshift": "redshift"}
MAX_SQL_BYTES = 1_000_000
"""A larger transformation is refused: parsing it would take minutes (sqlglot reads about 100 KB a second)."""


class ProjectParts(NamedTuple):
    """What the loader read, in the order :class:`~conveyor.project.model.Project` takes it."""

    root: Path
    settings: ProjectSettings
    settings_doc: YamlDoc
    relations: dict[str, Relation]
    dag: Dag
    dialect: str
    broken: dict[str, Location]
    catalogs: frozenset[str]
    warnings: list[ConveyorError]


class ProjectLoader:
    """Reads a project, collecting problems instead of stopping at the first."""

    def __init__(self, root: Path, cache: bool | None = None):
        self.root = root
        self.prefix = len(str(root)) + 1
        self.cache = ParseCache(root, cache)
        self.problems: list[ConveyorError] = []
        self.warnings: list[ConveyorError] = []
        self.broken: dict[str, Location] = {}
        self.files: set[str] = set()
        self.sql_digests: dict[str, str] = {}
        """The content hash of each relation's SQL file, by relation name (from the bytes read)."""

    def load(self) -> ProjectParts:
        with paused_gc():
            doc, settings = self._settings()
            project = self._project(doc, settings)
        if self.problems:
            raise ProjectError(self.problems)
        return project

    def collect(self) -> tuple[ProjectParts | None, list[ConveyorError]]:
        with paused_gc():
            try:
                doc, settings = self._settings()
            except ProjectError as exc:
                return None, list(exc.problems)
            except ConveyorError as exc:
                return None, [exc]
            project = self._project(doc, settings)
        return project, self.problems + self.warnings

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

    def _project(self, doc: YamlDoc, settings: ProjectSettings) -> ProjectParts:
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
        return ProjectParts(
            self.root, settings, doc, relations, dag, dialect, dict(self.broken), catalogs, list(self.warnings)
        )

    def _catalog_clashes(self, settings: ProjectSettings, doc: YamlDoc, schemas: set[str]) -> None:
        """DuckDB names a file's catalog after the file; a catalog named like a schema is ambiguous."""
        for name, env in settings.environments.items():
            catalog = env.database_name() if dialect_of(env.type).CATALOG_FROM_FILE_NAME else None
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
        self.files = schema_files(self.root / "schemas")
        for path in sorted((f for f in self.files if f.endswith((".yaml", ".yml"))), key=_parts):
            relation = self._attempt(self._design, Path(path), source_schemas)
            if relation is not None:
                relations[relation.name] = relation
            else:
                self.broken[path_name(path)] = Location(self._display(Path(path)))
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
            with open(path, "rb") as file:
                digest = content_digest(file.read())
        except OSError as exc:
            raise ConfigError(f"cannot read the design: {exc.strerror or exc}.", location=Location(display)) from None
        data = self.cache.design(digest)
        if data is not None:
            try:
                return CachedDoc(path, data, display), TableDesign.model_validate(data)
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
            try:
                with open(relation.sql_path, "rb") as file:
                    data = file.read(MAX_SQL_BYTES + 1)  # no stat: one open and one read per file
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the SQL file: {exc.strerror or exc}.",
                    location=Location(self._display(relation.sql_path)),
                ) from None
            if len(data) > MAX_SQL_BYTES:
                raise ConfigError(
                    f"the SQL file is larger than {MAX_SQL_BYTES:,} bytes, more than a query a person maintains.",
                    location=Location(self._display(relation.sql_path)),
                    hint="Split the query into several relations, or move the data it spells out into a source table.",
                    code="sql-parse",
                )
            try:
                relation.sql = _universal_newlines(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise ConfigError(
                    "the SQL file is not UTF-8 text.", location=Location(self._display(relation.sql_path))
                ) from None
            self.sql_digests[relation.name] = content_digest(data)
        return relation

    def _sql(self, relations: dict[str, Relation], dialect: str) -> None:
        """Find the tables each query reads (and its output names), from the cache or by parsing it."""
        for relation in relations.values():
            if relation.sql is None or relation.sql_path is None:
                continue
            digest = self.sql_digests.get(relation.name) or content_digest(relation.sql.encode("utf-8"))
            facts = self.cache.sql(dialect, digest)
            if facts is None:
                from conveyor.graph.sqldeps import parse_sql, referenced_tables  # sqlglot: only on a cache miss

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
        resolvable = known | set(self.broken)
        for relation in relations.values():
            if relation.references is None or relation.sql_path is None:
                continue
            name = relation.name
            deps: list[str] = []
            for ref in relation.references:
                if ref.catalog is not None and not is_own_catalog(ref.catalog, catalogs):
                    relation.external.append(".".join(p for p in (ref.catalog, ref.schema, ref.name) if p))
                    continue
                # names of broken designs resolve too: "missing" would mislead, they are reported
                target = resolve_ref(ref, relation.schema, search_path, resolvable, catalogs)
                if target is None:
                    continue
                if target not in known:
                    where = Location(self._display(relation.sql_path), ref.line, ref.column)
                    if target in self.broken:
                        continue  # its design is broken and reported; "missing" would mislead
                    if is_external(target, external):
                        if target not in relation.external:
                            relation.external.append(target)
                        continue
                    self.problems.append(self._missing(relation, ref, target, known, managed, where, search_path))
                elif target == name:
                    where = Location(self._display(relation.sql_path), ref.line, ref.column)
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
        relation: Relation,
        ref: TableRef,
        target: str,
        known: set[str],
        managed: set[str],
        where: Location,
        search_path: Sequence[str] = (),
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
            + _closest(ref, target, known - {relation.name}, [relation.schema, *search_path]),
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


def _closest(ref: TableRef, target: str, known: set[str], schemas: list[str]) -> str:
    """' Did you mean "x"?' for a name the SQL reads: an unqualified name is compared with table names.

    ``FROM customer`` in a project with ``shop.customers`` on the search path means that table,
    though ``analytics.best_customers`` is closer as a whole ``schema.table`` string.
    """
    if ref.schema is None:
        for among in (schemas, None):
            tables: dict[str, list[str]] = {}
            for name in sorted(known):
                schema, _, table = name.partition(".")
                if among is None or schema in among:
                    tables.setdefault(table, []).append(name)
            close = get_close_matches(ref.name, list(tables), n=1, cutoff=0.6)
            if close:
                rank = {schema: i for i, schema in reversed(list(enumerate(schemas)))}
                best = min(tables[close[0]], key=lambda n: rank.get(n.partition(".")[0], len(schemas)))
                return f' Did you mean "{best}"?'
    return did_you_mean(target, known)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: reading a project allocates many objects that all stay alive.

    Each collection walks every object allocated so far, so with tens of thousands of designs
    the collector took about a third of a project's load (and more the larger the project).
    Reference counting still frees everything that is not in a cycle; the collector resumes
    (if it was on) when the block ends.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def own_catalogs(environment: EnvironmentConfig) -> frozenset[str]:
    """The names SQL may give the environment's own database (``db.schema.table``); empty when unknown.

    DuckDB matches catalog names case-insensitively, so the lower-case name counts too.
    """
    name = environment.database_name()
    if name is None:
        return frozenset()
    return dialect_of(environment.type).database_names(name)


def warehouse_may_accept(sql: str, dialect: str) -> bool:
    """Whether a query sqlglot cannot parse may still be one the warehouse runs (its dialect decides)."""
    return dialect_of(dialect).may_accept(sql)


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


def schema_files(folder: Path) -> set[str]:
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


def _universal_newlines(text: str) -> str:
    """Line ends as ``open(..., "r")`` gives them: ``\r\n`` and ``\r`` become ``\n``."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parts(path: str) -> list[str]:
    """Sort key of a schema file: (schema folder, file name), as paths compare."""
    return path.rsplit(os.sep, 2)[-2:]


def path_name(path: str) -> str:
    """``"schema.table"`` for ``.../schemas/<schema>/<table>.<ext>``."""
    folder, _, file = path.rpartition(os.sep)
    return f"{folder.rpartition(os.sep)[2]}.{file.rpartition('.')[0]}"
