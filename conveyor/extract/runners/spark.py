"""The ``spark`` job type: one table's extract as a PySpark application.

Conveyor plans the read here, with the source's own catalog and drivers: the columns and
the SQL that selects each one in a form Spark reads exactly (its "wire" form), the
incremental predicate (the same ``cursor >= watermark - lag`` the ``arrow`` runner builds),
the partitions (Spark's ``partitionColumn``/``lowerBound``/``upperBound``/``numPartitions``
from the source's ``min_max`` for integer, date and timestamp keys; ``predicates`` at the
source's quantiles for other keys) and, on PostgreSQL, one exported snapshot that every
Spark partition imports. Then it hands the plan to the extract run's one Spark application
(:mod:`conveyor.extract.runners.spark_application`, running :mod:`conveyor.extract.spark_app`:
``python -m`` with pyspark in local mode, or a configured submit command for a cluster) and
waits for that table's answer; the DSNs reach the application through its environment,
never its command line or the plan.

Spark writes Parquet into a staging folder inside the extract folder. Spark has no
unsigned, uuid or json types, rounds decimals it cannot hold and reads some types in its
own way, so every staged file is then streamed through the source's own exact Arrow
conversion (the one the ``arrow`` runner uses) into ``part-*.parquet`` files with the
design's exact schema; a value that would not convert exactly raises. The orchestrator
writes the manifest afterwards, as for every runner. See docs/spark.md.

With the lake on an object store, the "extract folder" is a staging folder on local disk
(Spark's executors write files, and the converted parts are files too): the orchestrator
uploads the ``part-*.parquet`` files into the bucket, checking each one's sha256 on the
way, then commits the manifest there, and the staging folder is removed whatever happens.
Spark never needs credentials for the lake's bucket.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shlex
import shutil
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.config.secrets import scrub
from conveyor.design.types import SqlType, parse_type
from conveyor.errors import ExtractError, TransientError
from conveyor.extract import incremental
from conveyor.extract.jobs import ExtractJob
from conveyor.extract.runners.base import (
    Runner,
    RunnerInput,
    RunnerOutput,
    next_watermark,
    plan_incremental,
    read_request,
    run_tasks,
)
from conveyor.extract.runners.spark_application import SparkApplication, SparkApplications
from conveyor.lake.parts import PartWriter
from conveyor.sources import open_source, partition
from conveyor.sources.base import ReadRequest, Source
from conveyor.sources.jdbc import JDBC_READERS, SPLIT_ALIAS, JdbcReader

log = logging.getLogger("conveyor.sources")

STAGING = "_spark"
_INTEGER_KEYS = {"tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger"}
_TEMPORAL_KEYS = {"date", "timestamp", "timestamptz"}
#: the local JVM's options: C1 only (no C2 compile threads) and one GC thread; measured in
#: docs/benchmarks.md (spark section), overridden by a conf of spark.driver.extraJavaOptions
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


# --------------------------------------------------------------------------- configuration


@dataclass
class SparkSettings:
    """Where and how the Spark application runs (see docs/spark.md#configuration)."""

    master: str = "local[*]"
    submit: str | None = None
    jars: list[str] = field(default_factory=list)
    conf: dict[str, str] = field(default_factory=dict)
    jdbc_url: str | None = None
    driver: str | None = None

    @classmethod
    def resolve(cls, job: ExtractJob, environ: dict[str, str] | None = None) -> SparkSettings:
        """The job's ``options["spark"]`` (from conveyor.yaml), overridden by the environment.

        ``CONVEYOR_SPARK_MASTER`` (which a pipeline's ``spark_master`` sets),
        ``CONVEYOR_SPARK_SUBMIT``, ``CONVEYOR_SPARK_JARS`` (comma-separated) and
        ``CONVEYOR_SPARK_CONF`` (a JSON object, merged over the configured ``conf``).
        """
        env = os.environ if environ is None else environ
        given = job.options.get("spark") or {}
        if not isinstance(given, dict):
            raise ExtractError(f'the spark settings of "{job.relation}" must be a mapping, not {given!r}.')
        settings = cls(
            master=str(given.get("master") or "local[*]"),
            submit=given.get("submit") or None,
            jars=[str(j) for j in given.get("jars") or []],
            conf={str(k): str(v) for k, v in (given.get("conf") or {}).items()},
            jdbc_url=given.get("jdbc_url") or None,
            driver=given.get("driver") or None,
        )
        if env.get("CONVEYOR_SPARK_MASTER"):
            settings.master = env["CONVEYOR_SPARK_MASTER"]
        if env.get("CONVEYOR_SPARK_SUBMIT"):
            settings.submit = env["CONVEYOR_SPARK_SUBMIT"]
        if env.get("CONVEYOR_SPARK_JARS"):
            settings.jars = [j.strip() for j in env["CONVEYOR_SPARK_JARS"].split(",") if j.strip()]
        if env.get("CONVEYOR_SPARK_CONF"):
            try:
                extra = json.loads(env["CONVEYOR_SPARK_CONF"])
            except ValueError as exc:
                raise ExtractError(f"CONVEYOR_SPARK_CONF is not valid JSON: {exc}.") from None
            if not isinstance(extra, dict):
                raise ExtractError('CONVEYOR_SPARK_CONF must be a JSON object, e.g. {"spark.driver.memory": "4g"}.')
            settings.conf.update({str(k): str(v) for k, v in extra.items()})
        return settings

    @property
    def local(self) -> bool:
        return self.submit is None and self.master.startswith("local")


def require_pyspark() -> None:
    """Fail the table with what to install when pyspark (or Java) is missing."""
    if importlib.util.find_spec("pyspark") is None:
        raise ExtractError(
            "the spark job type needs pyspark, which is not installed.",
            hint='Install it with `pip install "conveyor[spark]"` (Spark also needs Java 17+, e.g. '
            "`apt-get install default-jre-headless`), or set CONVEYOR_SPARK_SUBMIT to a cluster's submit command, "
            "or use job_type arrow.",
            code="spark-unavailable",
        )
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise ExtractError(
            "the spark job type needs Java 17+, and no `java` is on the PATH (JAVA_HOME is not set either).",
            hint="Install it, e.g. `apt-get install default-jre-headless`, or set JAVA_HOME.",
            code="spark-unavailable",
        )


# --------------------------------------------------------------------------- planning


@dataclass
class SparkPlan:
    """What the Spark application runs for one table; a request in its queue. It holds no secret."""

    relation: str
    master: str
    jars: list[str]
    conf: dict[str, str]
    jdbc: dict[str, Any]
    dbtable: str
    output: str
    compression: str
    partitioning: dict[str, Any] | None = None
    predicates: list[str] | None = None
    drop: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, default=str)

    def describe(self) -> str:
        """The query text recorded in the manifest."""
        text = f"spark: SELECT * FROM {self.dbtable}"
        if self.partitioning:
            p = self.partitioning
            text += (
                f"  -- partitionColumn {p['column']}, lowerBound {p['lower']}, upperBound {p['upper']}, "
                f"numPartitions {p['num_partitions']}"
            )
        elif self.predicates:
            text += "  -- predicates: " + " | ".join(self.predicates)
        return text


def bound_text(value: Any) -> str:
    """A partition bound as Spark parses it (timestamps in its UTC session zone)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(int(value))


def _boundable(value: Any) -> bool:
    return isinstance(value, date | datetime) or (isinstance(value, int) and not isinstance(value, bool))


def partition_count(job: ExtractJob, source: Source, request: ReadRequest) -> int:
    """``partitions`` from the design, else one per 2M estimated rows (at most 16); 1 without a key."""
    if job.split_by is None or not source.SUPPORTS_SPLIT:
        return 1
    if job.partitions is not None:
        return job.partitions
    return partition.auto_count(source.row_estimate(request.schema, request.table), 8)


def plan_partitions(
    engine: JdbcReader, job: ExtractJob, key_type: SqlType | None, count: int
) -> tuple[dict[str, Any] | None, list[str] | None]:
    """Spark's range partitioning for integer/date/timestamp keys, else predicates at quantiles."""
    if count < 2 or job.split_by is None:
        return None, None
    source, request = engine.source, engine.request
    if key_type is not None and not key_type.is_array and key_type.name in _INTEGER_KEYS | _TEMPORAL_KEYS:
        low, high = source.min_max(request.schema, request.table, job.split_by, request.where, request.params)
        if low is None or high is None:
            return None, None  # no rows (or only NULL keys): one partition
        if _boundable(low) and _boundable(high):
            return {
                "column": SPLIT_ALIAS,
                "lower": bound_text(low),
                "upper": bound_text(high),
                "num_partitions": count,
            }, None
        # e.g. a MySQL zero date, which the driver returns as text: split at quantiles instead
    cuts = source.quantiles(request.schema, request.table, job.split_by, count)
    if not cuts:
        return None, None
    fragments = partition.range_filters(source.quote(SPLIT_ALIAS), cuts, source.PLACEHOLDER)
    return None, [source.inline(where, params) or where for where, params in fragments]


# --------------------------------------------------------------------------- the runner


class SparkRunner(Runner):
    """Runs one table's extract as a Spark application and converts its Parquet back exactly."""

    JOB_TYPE = "spark"

    def run(self, job: ExtractJob, given: RunnerInput) -> RunnerOutput:
        settings, app_plan = self._application_of(job)
        jars = app_plan.jars
        columns = tuple((name, parse_type(type_text)) for name, type_text in job.columns)
        schema = pa.schema([pa.field(name, sql_type.arrow) for name, sql_type in columns])
        staging = given.folder / STAGING
        with open_source(job.source_type, job.source, given.dsn, root=given.root, zero_dates=job.zero_dates) as source:
            inc = plan_incremental(job, source, given.previous_watermark)
            request = read_request(job, source, columns, inc, given)
            engine = JDBC_READERS[job.source_type](source, request)
            count = partition_count(job, source, request)
            key_type = dict(columns).get(job.split_by or "")
            if job.split_by is not None and key_type is None:
                key_type = self._key_type(source, request, job.split_by)
            if job.split_by is not None and key_type is not None:
                partition.check_split_type(key_type, job.relation, job.split_by)
            use_snapshot = count > 1 and source.SUPPORTS_SNAPSHOT
            with source.snapshot() if use_snapshot else nullcontext(None) as snapshot:
                partitioning, predicates = plan_partitions(engine, job, key_type, count)
                split = job.split_by if (partitioning or predicates) else None
                options = {"fetchsize": str(given.batch_rows), "preferTimestampNTZ": "true"}
                options.update(engine.jdbc_options())
                init = engine.session_init(snapshot if (partitioning or predicates) else None)
                if init:
                    options["sessionInitStatement"] = init
                plan = SparkPlan(
                    relation=job.relation,
                    master=settings.master,
                    jars=jars,
                    conf=self._conf(settings),
                    jdbc={
                        "url": settings.jdbc_url or engine.jdbc_url(given.dsn),
                        "driver": settings.driver or self._driver(job, jars),
                        "options": options,
                    },
                    dbtable=f"({engine.select_sql(split)}) AS conveyor_q",
                    output=staging.resolve().as_uri(),
                    compression="zstd" if given.compression == "none" else given.compression,
                    partitioning=partitioning,
                    predicates=predicates,
                    drop=[SPLIT_ALIAS] if split else [],
                )
                result = self._launch(job, given, settings, plan)
            try:
                parts, high = self._convert(engine, staging, schema, job, given)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        if inc.high_water is not None:
            inc.high_water.value = high
        watermark = next_watermark(inc, given.previous_watermark)
        detail = {"partitions": result.get("partitions"), "spark": result}
        return RunnerOutput(
            parts, schema, plan.describe(), watermark, inc.is_increment, detail, warnings=list(source.notices)
        )

    # -- planning helpers

    @staticmethod
    def _key_type(source: Source, request: ReadRequest, key: str) -> SqlType | None:
        for column in source.describe(request.schema, request.table).columns:
            if column.name == key:
                return column.type
        return None

    @staticmethod
    def _jars(job: ExtractJob, settings: SparkSettings) -> list[str]:
        jars = settings.jars or [JDBC_READERS[job.source_type].DEFAULT_JAR]
        for jar in jars:
            if "://" in jar:
                continue  # a cluster path (hdfs://, s3://, gs://): the cluster checks it
            if not Path(jar).is_file():
                package = JDBC_READERS[job.source_type].JAR_PACKAGE
                raise ExtractError(
                    f'the JDBC driver {jar} for "{job.relation}" does not exist.',
                    hint=f"Install it with `apt-get install {package}`, or name the driver's jar in "
                    "CONVEYOR_SPARK_JARS (or sources.<name>.spark.jars).",
                )
        return [str(Path(j).resolve()) if "://" not in j else j for j in jars]

    @staticmethod
    def _driver(job: ExtractJob, jars: list[str]) -> str:
        return JDBC_READERS[job.source_type].driver(jars)

    @staticmethod
    def _conf(settings: SparkSettings) -> dict[str, str]:
        conf: dict[str, str] = {}
        if settings.local:
            # no web UI and no network interface needed for a local run; a JVM that lives for
            # one extract run spends less CPU with the quick JIT and the serial collector
            conf.update(
                {
                    "spark.ui.enabled": "false",
                    "spark.driver.host": "127.0.0.1",
                    "spark.driver.bindAddress": "127.0.0.1",
                    "spark.driver.extraJavaOptions": LOCAL_JVM_OPTIONS,
                }
            )
        conf.update(settings.conf)
        return conf

    # -- running the application

    def _argv(self, settings: SparkSettings, plan: SparkPlan) -> list[str]:
        """``python -m conveyor.extract.spark_app``, or the submit command with the app's path."""
        if settings.submit is None:
            return [sys.executable, "-m", "conveyor.extract.spark_app"]
        from conveyor.extract import spark_app

        app = str(Path(spark_app.__file__).resolve())
        words = shlex.split(settings.submit)
        values = {"app": app, "master": plan.master, "jars": ",".join(plan.jars)}
        if any("{app}" in w for w in words):
            return [w.format(**values) for w in words]
        argv = list(words)
        if "--master" not in words:
            argv += ["--master", plan.master]
        if plan.jars and "--jars" not in words:
            argv += ["--jars", ",".join(plan.jars)]
        for key, value in spark_app.spark_conf({"conf": plan.conf}).items():
            argv += ["--conf", f"{key}={value}"]
        return [*argv, app]

    def open_session(
        self, jobs: list[ExtractJob], scratch: Path, dsns: dict[str, str], root: Path
    ) -> SparkApplications:
        """The run's Spark applications, each started now (its JVM starts while the tables are planned)."""
        apps = SparkApplications(scratch, dsns, root)
        for job in jobs:
            try:
                settings, plan = self._application_of(job)
                self._application(apps, settings, plan)
            except ExtractError:
                continue  # the table fails with this error when it runs
        return apps

    def _application_of(self, job: ExtractJob) -> tuple[SparkSettings, SparkPlan]:
        """The job's Spark settings, and a plan with only the application's part filled in."""
        settings = SparkSettings.resolve(job)
        if settings.submit is None:
            require_pyspark()
        if job.source_type not in JDBC_READERS:
            raise ExtractError(
                f'"{job.relation}" has job_type spark, but its source is {job.source_type}; '
                "the spark job type reads postgres and mysql sources.",
                hint="Use job_type arrow for this table.",
            )
        jars = self._jars(job, settings)
        plan = SparkPlan(job.relation, settings.master, jars, self._conf(settings), {}, "", "", "")
        return settings, plan

    def _application(self, apps: SparkApplications, settings: SparkSettings, plan: SparkPlan) -> SparkApplication:
        app = {"master": plan.master, "jars": plan.jars, "conf": plan.conf}
        return apps.application(self._argv(settings, plan), app, local=settings.local)

    def _launch(self, job: ExtractJob, given: RunnerInput, settings: SparkSettings, plan: SparkPlan) -> dict[str, Any]:
        """Run the plan in the run's Spark application (or, outside a run, in one of its own)."""
        shared = given.session if isinstance(given.session, SparkApplications) else None
        apps = shared or SparkApplications(given.folder / "_queue", {job.source: given.dsn}, given.root)
        done = False
        try:
            app = self._application(apps, settings, plan)
            answer = app.run(job.relation, job.source, plan.__dict__, given.timeout_s)
            done = True
        finally:
            if shared is None:
                apps.close(kill=not done)
        if answer.get("ok"):
            return answer
        error = answer.get("error") or {}
        message = scrub(str(error.get("message") or "unknown error"))
        where = f'the Spark job of "{job.relation}" failed: {message}'
        if error.get("transient"):
            raise TransientError(where)
        raise ExtractError(where, hint=_hint(message))

    # -- converting Spark's Parquet into the design's exact parts

    @staticmethod
    def _convert(
        engine: JdbcReader, staging: Path, schema: pa.Schema, job: ExtractJob, given: RunnerInput
    ) -> tuple[list[Any], Any]:
        """Convert every file Spark wrote, in parallel on the worker pool, into numbered parts."""
        if not staging.is_dir():
            raise ExtractError(f'the Spark job of "{job.relation}" wrote nothing into {staging}.')
        files = sorted(p for p in staging.glob("*.parquet") if not p.name.startswith((".", "_")))
        prefixes = ["part"] if len(files) < 2 else [f"part-{i:03d}" for i in range(len(files))]
        tasks = [
            functools.partial(_convert_file, engine, path, schema, job, given, prefix)
            for path, prefix in zip(files, prefixes, strict=False)
        ]
        if not tasks:  # no rows: one empty part with the schema, as arrow writes
            tasks = [functools.partial(_convert_file, engine, None, schema, job, given, "part")]
        try:
            results = run_tasks(given.pool, tasks)
        finally:
            engine.finish()
        parts = [part for found, _ in results for part in found]
        highs = [high for _, high in results if high is not None]
        return parts, max(highs, default=None)


def _convert_file(
    engine: JdbcReader, path: Path | None, schema: pa.Schema, job: ExtractJob, given: RunnerInput, prefix: str
) -> tuple[list[Any], Any]:
    high_water = None
    if job.incremental_cursor:
        cursor_type = dict((n, parse_type(t)) for n, t in job.columns)[job.incremental_cursor]
        high_water = incremental.HighWater(job.incremental_cursor, cursor_type)
    writer = PartWriter(given.folder, schema, prefix=prefix, part_rows=given.part_rows, compression=given.compression)
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=given.batch_rows) if path else iter(())
        for batch in batches:
            out = engine.convert(batch, schema)
            writer.write(out)
            if high_water is not None:
                high_water.update(out)
        parts = writer.close()
    except BaseException:
        writer.abort()
        raise
    return parts, high_water.value if high_water else None


def _hint(message: str) -> str | None:
    lowered = message.lower()
    if "no suitable driver" in lowered or "classnotfoundexception" in lowered:
        return "Check the JDBC driver jar (CONVEYOR_SPARK_JARS or sources.<name>.spark.jars) and its class."
    if "connection" in lowered and ("refused" in lowered or "attempt failed" in lowered):
        return "Check that the executors can reach the database at the JDBC URL."
    return None
