"""A project on disk: ``conveyor.yaml`` plus ``schemas/<schema>/<table>.{yaml,sql}``.

:meth:`Project.load` reads everything, checks it, infers dependencies from the SQL and
orders the relations into a DAG. It collects every problem it finds before raising, so a
user fixes a broken project in one pass instead of one error at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.config.secrets import check_no_inline_password, read_credentials_file, resolve
from conveyor.config.settings import EnvironmentConfig, ProjectSettings, SourceConfig
from conveyor.config.yamlfile import YamlDoc
from conveyor.design.upstream import split_upstream
from conveyor.errors import (
    ConveyorError,
    Location,
    UserError,
    did_you_mean,
)
from conveyor.graph.dag import Dag
from conveyor.graph.selection import select
from conveyor.project.loader import ProjectLoader
from conveyor.project.relation import Relation

# upstream schema assumed when a design's source_table names only a table
_DEFAULT_UPSTREAM_SCHEMA = {"sqlite": "main", "postgres": "public", "mysql": None, "lake": None}


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
        return cls(*ProjectLoader(Path(root).resolve(), cache).load())

    @classmethod
    def collect(cls, root: Path | str = ".", *, cache: bool | None = None) -> LoadResult:
        """Read the project as far as possible and return it with every problem, raising nothing.

        ``Project.load`` raises on the first problem list; ``conveyor validate`` uses this to go
        on checking what did load. Relations whose design failed are left out and listed in
        ``Project.broken``; references to them are not reported again as missing dependencies.
        """
        parts, problems = ProjectLoader(Path(root).resolve(), cache).collect()
        return LoadResult(cls(*parts) if parts is not None else None, problems)

    def select(self, terms: Sequence[str] = ()) -> list[Relation]:
        """Relations matching selection terms, in execution order."""
        return [self.relations[name] for name in select(self.dag, list(terms))]

    def path(self, value: str) -> Path:
        """A path from the settings, relative to the project root unless absolute."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def lake_location(self) -> str:
        """Where the lake is: ``s3://bucket/prefix``, or the folder, resolved against the project.

        ``${VAR}`` and ``${VAR:-default}`` in ``lake.path`` are replaced as in a DSN (the
        environment, then the credentials file), so one project can keep its lake in a
        folder on a laptop and in a bucket in production. A location is no secret: it is
        not scrubbed from messages.
        """
        value = self.settings.lake.path
        if "${" in value:
            value = resolve(
                value,
                where=self.settings_doc.location(("lake", "path")),
                credentials=self.credentials,
                credentials_path=self.path(self.settings.credentials_file),
                register=False,
            )
        return value if "://" in value else str(self.path(value))

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
