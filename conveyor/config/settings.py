"""The models behind ``conveyor.yaml``.

Every key is documented here, where it is defined; ``conveyor schema`` exports these
descriptions as JSON Schema so editors can complete and check the file, and
``docs/configuration.md`` is generated from the same text.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from conveyor.config.base import IDENTIFIER, StrictModel
from conveyor.config.pipelines import PipelineConfig

__all__ = ["IDENTIFIER", "ProjectSettings", "StrictModel"]


class SparkConfig(StrictModel):
    """Where and how the `spark` job type runs this source's tables (see docs/spark.md).

    The environment overrides each key: CONVEYOR_SPARK_MASTER (a pipeline's spark_master sets
    it), CONVEYOR_SPARK_SUBMIT, CONVEYOR_SPARK_JARS and CONVEYOR_SPARK_CONF.
    """

    master: str = Field(
        default="local[*]",
        description="The Spark master: local[*] (in this process's machine), local[N], spark://host:7077, "
        "yarn, k8s://...",
    )
    submit: str | None = Field(
        default=None,
        description="A submit command for a cluster, e.g. `spark-submit --deploy-mode client`; Conveyor appends "
        "--master, --jars, --conf and the application's path, or fills in {app}, {master} and {jars} when the "
        "command names them. Unset: the application runs as `python -m conveyor.extract.spark_app`.",
    )
    jars: list[str] = Field(
        default_factory=list,
        description="JDBC driver jars (paths, or URLs the cluster reads). Default: Debian's "
        "/usr/share/java/postgresql.jar or /usr/share/java/mariadb-java-client.jar.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Spark settings, e.g. {spark.executor.memory: 4g}. The time zone and Parquet timestamp "
        "settings the exact type mapping needs cannot be changed.",
    )
    jdbc_url: str | None = Field(
        default=None,
        description="The JDBC URL executors connect to, when they reach the database by another name than "
        "Conveyor does. User and password still come from the DSN.",
    )
    driver: str | None = Field(
        default=None, description="The JDBC driver class; default org.postgresql.Driver or org.mariadb.jdbc.Driver."
    )


class SourceConfig(StrictModel):
    """An upstream database, or a static set of files, that tables are extracted from."""

    type: Literal["postgres", "mysql", "sqlite", "lake", "seed"] = Field(
        description="The upstream engine: postgres (13+), mysql (MySQL 8 or MariaDB 10.11), sqlite, lake "
        "(committed extracts or unloads in another lake, e.g. another project's `conveyor unload`), or seed "
        "(CSV files of the project, docs/seeds.md)."
    )
    dsn: str = Field(
        description="Connection string. Secrets come from the environment: write ${VAR} or ${VAR:-default}; "
        "a password written inline is an error. SQLite takes a file path, relative to the project; lake takes "
        "the folder holding the <schema>.<table> folders (e.g. ../other/lake/data/unload_production), or that "
        "folder of a lake on an S3-compatible store (s3://bucket/prefix/data/unload_production, read with the "
        "AWS environment: AWS_ENDPOINT_URL, keys, region); seed takes "
        "the project folder holding its CSV files (e.g. seeds/reference)."
    )
    target_schema: str | None = Field(
        default=None,
        description="The warehouse schema its tables load into, and the folder under schemas/ that holds "
        "their designs. Defaults to the source's name.",
    )
    include: list[str] = Field(
        default_factory=lambda: ["*"],
        description='Globs over upstream "schema.table" names that bootstrap and extract consider.',
    )
    exclude: list[str] = Field(default_factory=list, description="Globs over upstream names to leave out.")
    job_type: Literal["arrow", "command", "spark"] = Field(
        default="arrow", description="Default job type of this source's tables (a design can override it)."
    )
    spark: SparkConfig | None = Field(
        default=None, description="Settings of the `spark` job type for this source's tables (docs/spark.md)."
    )
    description: str | None = Field(default=None, description="Free text shown by `conveyor ls`.")
    zero_dates: Literal["null", "error"] = Field(
        default="null",
        description="MySQL zero dates ('0000-00-00', or a zero month or day): `null` reads them as NULL and "
        "records a warning in the run and the manifest; `error` fails the extract. Under `null`, bootstrap "
        "writes no not_null on date columns and validate warns where a design says not_null (docs/types.md).",
    )

    @model_validator(mode="after")
    def _dsn_fits_type(self) -> SourceConfig:
        check_dsn(self.dsn, self.type, SOURCE_SCHEMES[self.type], "source")
        return self


class LakeConfig(StrictModel):
    """Where extracts land: immutable extract folders of Parquet parts, each with a manifest."""

    path: str = Field(
        default="lake",
        description="A folder, relative to the project, or an absolute path; or s3://bucket/prefix for an "
        "S3-compatible store, reached through the standard AWS environment (AWS_ENDPOINT_URL, keys or an "
        "instance role, AWS_REGION), never with credentials in the location (docs/deploy.md). ${VAR} and "
        "${VAR:-default} are replaced from the environment, e.g. ${CONVEYOR_LAKE:-lake}.",
    )
    keep: int = Field(default=3, ge=1, description="Committed extracts kept per table; older ones are removed.")
    part_rows: int = Field(
        default=1_000_000, ge=1_000, description="Rows per Parquet part file before a new part is started."
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(
        default="zstd", description="Parquet compression codec."
    )
    lock_timeout: float = Field(
        default=600,
        ge=0,
        description="Seconds an extract waits for another extract of the same table (e.g. another pipeline's) to "
        "finish before it fails; 0 fails at once.",
    )


class EnvironmentConfig(StrictModel):
    """A warehouse target."""

    type: Literal["duckdb", "postgres", "redshift"] = Field(description="The warehouse engine.")
    dsn: str = Field(
        description="A DuckDB file path (relative to the project), or a connection URL with ${VAR} secrets."
    )
    description: str | None = Field(default=None, description="Free text.")
    readers: list[str] = Field(
        default_factory=list,
        description="Groups (roles) granted USAGE and SELECT on every published schema (PostgreSQL, Redshift).",
    )
    writers: list[str] = Field(
        default_factory=list,
        description="Groups (roles) granted USAGE, CREATE and all table privileges on published schemas.",
    )
    keep_backup: bool = Field(
        default=True,
        description="Keep the previous version after publishing (PostgreSQL: <schema>$backup schemas; "
        "DuckDB: <file>.previous).",
    )

    @model_validator(mode="after")
    def _dsn_fits_type(self) -> EnvironmentConfig:
        check_dsn(self.dsn, self.type, ENVIRONMENT_SCHEMES[self.type], "environment")
        return self

    def database_name(self) -> str | None:
        """The name SQL gives this warehouse's own database, read from the DSN without resolving secrets.

        DuckDB names a file's catalog after the file name, without a leading dot, up to the
        first dot. PostgreSQL and Redshift take the DSN's dbname (libpq's default: the user
        name). None when that part is a ``${VAR}`` or missing.
        """
        from conveyor.warehouse.dialect import dialect

        return dialect(self.type).database_name(self.dsn)


class TrackingConfig(StrictModel):
    """Where runs, events and extract watermarks are recorded."""

    dsn: str = Field(
        default="sqlite:///.conveyor/tracking.db",
        description="sqlite:///<path relative to the project> (default) or a postgresql:// URL for a shared store.",
    )


class SchedulerConfig(StrictModel):
    """The scheduler (``conveyor scheduler``)."""

    lease_s: float = Field(
        default=30.0,
        ge=2.0,
        le=3600.0,
        description="Seconds the leading scheduler's lease in the tracking store lasts; it renews it every poll "
        "(about a second). On a shared PostgreSQL store a standby scheduler on another host takes over within "
        "this long after the leader dies (docs/pipelines.md).",
    )


class RetryConfig(StrictModel):
    """Retries of transient failures (lost connection, deadlock, serialization failure, too many connections)."""

    attempts: int = Field(default=3, ge=1, le=20, description="Tries in all, the first included.")
    initial_delay: float = Field(default=1.0, ge=0, description="Seconds before the first retry; doubles each time.")
    max_delay: float = Field(default=30.0, ge=0, description="Longest wait between tries, in seconds (jittered).")


class Defaults(StrictModel):
    """Settings every command uses unless a flag or pipeline overrides them."""

    jobs: int = Field(default=4, ge=1, le=256, description="Parallel workers for extract and build.")
    search_path: list[str] = Field(
        default_factory=list,
        description="Schemas searched, after the relation's own schema, for unqualified table names in SQL.",
    )
    publish_on_failure: bool = Field(
        default=False,
        description="Publish when relations outside `required` failed (they are reported). "
        "When false, any failure keeps the previous warehouse.",
    )
    batch_rows: int = Field(
        default=65_536,
        ge=1_024,
        description="Most rows per Arrow batch read from upstream (fewer for wide rows, see memory_budget_mib).",
    )
    memory_budget_mib: int = Field(
        default=256,
        ge=64,
        description="Memory (MiB) an extract process aims to stay within. About 160 MiB goes to the interpreter "
        "and libraries; the rest is shared equally among the reads that run at once (one per worker), and each "
        "read sizes its batches, the queue between reader and writer, the driver's read-ahead and the Parquet "
        "row groups from its share and the table's row width (docs/extract.md).",
    )
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries of transient extract failures.")


class ProjectSettings(StrictModel):
    """``conveyor.yaml``: the settings of one project."""

    name: str = Field(description="The project's name, recorded with every run.")
    description: str | None = Field(default=None, description="Free text.")
    sources: dict[str, SourceConfig] = Field(
        default_factory=dict, description="Upstream databases by name; the name is used in the lake layout."
    )
    lake: LakeConfig = Field(default_factory=LakeConfig, description="The data lake.")
    environments: dict[str, EnvironmentConfig] = Field(
        default_factory=lambda: {"development": EnvironmentConfig(type="duckdb", dsn="warehouse.duckdb")},
        description="Warehouse targets by name.",
    )
    default_environment: str | None = Field(
        default=None, description="Environment used when --env is not given; defaults to the first one."
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="The tracking store.")
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, description="The scheduler.")
    defaults: Defaults = Field(default_factory=Defaults, description="Defaults for every command.")
    required: list[str] = Field(
        default_factory=list,
        description="Selection terms whose relations must succeed; if one fails, nothing is published.",
    )
    external: list[str] = Field(
        default_factory=list,
        description='Tables outside the project that SQL may read, as globs over "schema.table" (a bare word is a '
        "whole schema), e.g. legacy.*. They are not dependencies; a table of a schema the project does not "
        "manage that is not listed here is an error.",
    )
    pipelines: dict[str, PipelineConfig] = Field(
        default_factory=dict,
        description="Scheduled pipelines by name (more can live in pipelines/<name>.yaml).",
    )
    credentials_file: str = Field(
        default=".env",
        description="Optional KEY=VALUE file (kept out of git) read for ${VAR} references; "
        "the process environment wins over it.",
    )

    @field_validator("sources", "environments", "pipelines")
    @classmethod
    def _names_are_identifiers(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not IDENTIFIER.match(name):
                raise ValueError(f'"{name}" is not a valid name: use letters, digits and underscores')
        return value

    @field_validator("environments")
    @classmethod
    def _some_environment(cls, value: dict[str, EnvironmentConfig]) -> dict[str, EnvironmentConfig]:
        if not value:
            raise ValueError("at least one warehouse environment is needed")
        return value

    @field_validator("default_environment")
    @classmethod
    def _default_environment_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = info.data.get("environments") or {}
        if value and known and value not in known:
            raise ValueError(f'"{value}" is not one of the environments: {", ".join(known)}')
        return value

    def source_schemas(self) -> dict[str, str]:
        """Warehouse schema -> source name, for every source."""
        return {(cfg.target_schema or name): name for name, cfg in self.sources.items()}

    def environment_name(self, requested: str | None) -> str:
        """The environment to use: the requested one, the configured default or the first."""
        return requested or self.default_environment or next(iter(self.environments))


#: URL schemes a DSN of each type may have; None: a path (or, for PostgreSQL, libpq's key=value pairs)
SOURCE_SCHEMES: dict[str, tuple[str | None, ...]] = {
    "postgres": ("postgresql", "postgres", "postgresql+psycopg", None),
    "mysql": ("mysql", "mariadb", "mysql+pymysql"),
    "sqlite": ("sqlite", None),
    "lake": ("lake", "s3", None),
    "seed": (None,),
}
ENVIRONMENT_SCHEMES: dict[str, tuple[str | None, ...]] = {
    "duckdb": ("duckdb", None),
    "postgres": ("postgresql", "postgres", "postgresql+psycopg", None),
    "redshift": ("postgresql", "postgres", "redshift", "postgresql+psycopg", None),
}
#: what a DSN without a URL scheme is, per type: libpq ``key=value`` pairs, or a file or folder path
PLAIN_DSN: dict[str, str] = {
    "postgres": "libpq pairs",
    "redshift": "libpq pairs",
    "duckdb": "a file path",
    "sqlite": "a file path",
    "lake": "a file path or folder",
    "seed": "a folder of the project",
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_UNCLOSED = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})")


def check_dsn(dsn: str, kind: str, schemes: tuple[str | None, ...], what: str) -> None:
    """A DSN's form fits its type: its URL scheme (or its lack of one), and every ``${`` closed.

    A DSN that starts with ``${VAR}`` is whole in the variable and is not judged here.
    """
    if _UNCLOSED.search(dsn):
        raise ValueError('the dsn has a "${" that does not close: write ${NAME} or ${NAME:-default}')
    if dsn.startswith("${"):
        return
    match = _SCHEME.match(dsn)
    scheme = match.group(1).lower() if match else None
    plain = PLAIN_DSN.get(kind)
    if scheme in schemes:
        if scheme is None and plain == "libpq pairs" and "=" not in dsn:
            raise ValueError(
                f'a {kind} {what} needs a postgresql:// URL (or libpq key=value pairs), not "{_shown(dsn)}"'
            )
        return
    wanted = " or ".join(f"{s}://" for s in schemes if s and "+" not in s)
    if None in schemes and plain is not None and plain != "libpq pairs":
        wanted = f"{plain} (or {wanted})"
    raise ValueError(f"a {kind} {what} takes {wanted}, not a {scheme}:// DSN")


def _shown(dsn: str) -> str:
    """A DSN short enough to show, without what may be a password (text after a ':' before an '@')."""
    return re.sub(r":[^:@/]*@", ":***@", dsn)[:80]
