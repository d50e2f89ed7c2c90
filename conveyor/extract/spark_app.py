"""The PySpark application of the ``spark`` job type: one table's JDBC read into Parquet.

This file travels to wherever Spark runs (``python -m conveyor.extract.spark_app`` in
local mode, or the path of this file given to ``spark-submit`` or a managed cluster's
submit command), so it imports nothing but the standard library and pyspark.

It gets everything from the environment, never from its command line:

* ``CONVEYOR_SPARK_PLAN``: what to run, planned by Conveyor (the JDBC URL without
  credentials, the driver class, the SELECT as a ``dbtable`` subquery, the partitioning,
  the Spark settings and the output folder). It holds no secret.
* ``CONVEYOR_SOURCE_DSN``: the source's resolved DSN; only its user and password are used,
  and they go to Spark as JDBC properties (Spark redacts ``password`` in its UI and logs).
* ``CONVEYOR_JOB``: the job as JSON (``ExtractJob.to_json``), for the application name.

It writes Parquet files into the output folder and prints one line
``CONVEYOR_SPARK_RESULT {...}`` (or ``CONVEYOR_SPARK_ERROR {...}`` and exit status 1) on
standard output. Conveyor converts the files to the design's exact Arrow types and
commits the extract; this program never touches the manifest.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any
from urllib.parse import unquote, urlsplit

RESULT = "CONVEYOR_SPARK_RESULT"
ERROR = "CONVEYOR_SPARK_ERROR"

#: settings the exact type mapping depends on; a user's ``conf`` cannot change them
FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.ui.showConsoleProgress": "false",
}
#: JVM options appended to the driver's and executors' (java.sql timestamps use the JVM zone)
JVM_OPTIONS = "-Duser.timezone=UTC"

_TRANSIENT_SQLSTATES = {"40001", "40P01", "53300", "57P01", "57P02", "57P03", "55P03", "08006", "08003"}
_TRANSIENT_CODES = {1205, 1213, 1040, 1053, 2006, 2013}


def credentials(dsn: str) -> tuple[str | None, str | None]:
    """The user and password of a ``scheme://user:password@host/db`` DSN."""
    parts = urlsplit(dsn)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return user, password


def spark_conf(plan: dict[str, Any]) -> dict[str, str]:
    """The Spark settings of a plan: the user's, then the fixed ones, then the JVM time zone."""
    conf = {str(k): str(v) for k, v in (plan.get("conf") or {}).items()}
    conf.update(FIXED_CONF)
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        given = conf.get(key, "")
        if JVM_OPTIONS not in given:
            conf[key] = f"{given} {JVM_OPTIONS}".strip()
    if plan.get("jars"):
        conf["spark.jars"] = ",".join(plan["jars"])
    return conf


def session(plan: dict[str, Any], app_name: str) -> Any:
    """The SparkSession (the master comes from spark-submit when it launched this program)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if plan.get("master") and not _submitted():
        builder = builder.master(plan["master"])
    for key, value in spark_conf(plan).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(plan.get("log_level") or "ERROR")
    return spark


def _submitted() -> bool:
    """True when spark-submit started this program (it set the master already)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def read(spark: Any, plan: dict[str, Any], user: str | None, password: str | None) -> Any:
    """The DataFrame of the plan's partitioned JDBC read."""
    jdbc = plan["jdbc"]
    options: dict[str, str] = {"url": jdbc["url"], "driver": jdbc["driver"], "dbtable": plan["dbtable"]}
    options.update({str(k): str(v) for k, v in (jdbc.get("options") or {}).items()})
    if user is not None:
        options["user"] = user
    if password is not None:
        options["password"] = password
    predicates = plan.get("predicates")
    if predicates:
        properties = {k: v for k, v in options.items() if k not in ("url", "dbtable")}
        frame = spark.read.jdbc(options["url"], options["dbtable"], predicates=predicates, properties=properties)
    else:
        reader = spark.read.format("jdbc").options(**options)
        split = plan.get("partitioning")
        if split:
            reader = reader.options(
                partitionColumn=split["column"],
                lowerBound=str(split["lower"]),
                upperBound=str(split["upper"]),
                numPartitions=str(split["num_partitions"]),
            )
        frame = reader.load()
    drop = plan.get("drop") or []
    return frame.drop(*drop) if drop else frame


def write(frame: Any, plan: dict[str, Any]) -> None:
    """Write the rows as Parquet into the plan's output folder (which must not exist yet)."""
    frame.write.mode("errorifexists").option("compression", plan.get("compression") or "zstd").parquet(plan["output"])


def describe_error(exc: BaseException, secrets: list[str]) -> dict[str, Any]:
    """The root cause of a (Java) failure as a short message, with SQLSTATE or vendor code."""
    messages: list[str] = []
    sqlstate: str | None = None
    code: int | None = None
    java = getattr(exc, "java_exception", None)
    seen = 0
    while java is not None and seen < 20:
        seen += 1
        try:
            messages.append(str(java.toString()))
            if _is_sql_exception(java):
                sqlstate = str(java.getSQLState() or "") or sqlstate
                code = int(java.getErrorCode() or 0) or code
            java = java.getCause()
        except Exception:
            break
    if not messages:
        messages.append(f"{type(exc).__name__}: {exc}")
    root = messages[-1]
    text = root.split("\n\tat ")[0].strip()
    if "Job aborted" in messages[0] and len(messages) == 1:
        # the driver's summary carries the task's error after the last colon-prefixed class name
        text = messages[0].split("\nDriver stacktrace:")[0].strip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    transient = (sqlstate in _TRANSIENT_SQLSTATES) or (code in _TRANSIENT_CODES)
    return {"message": text[:4000], "sqlstate": sqlstate, "code": code, "transient": transient}


def _is_sql_exception(java: Any) -> bool:
    try:
        cls = java.getClass()
        while cls is not None:
            if cls.getName() == "java.sql.SQLException":
                return True
            cls = cls.getSuperclass()
    except Exception:
        return False
    return False


def watch_parent() -> None:
    """Exit when the Conveyor process that started us is gone (killed, crashed).

    Conveyor starts this program in its own process group, so nothing else would stop an
    orphaned Spark job; ending this process ends the JVM it started too. Only on the host
    Conveyor runs on (client deploy mode); elsewhere the process id means nothing.
    """
    pid = os.environ.get("CONVEYOR_PARENT_PID", "")
    if not pid.isdigit() or os.environ.get("CONVEYOR_PARENT_HOST") != socket.gethostname():
        return

    def watch() -> None:
        while True:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass
            time.sleep(1)

    threading.Thread(target=watch, name="conveyor-parent-watch", daemon=True).start()


def main() -> int:
    """Run the plan in ``$CONVEYOR_SPARK_PLAN``; report on standard output."""
    began = time.monotonic()
    watch_parent()
    try:
        plan = json.loads(os.environ["CONVEYOR_SPARK_PLAN"])
    except (KeyError, ValueError) as exc:
        print(f"{ERROR} " + json.dumps({"message": f"no valid CONVEYOR_SPARK_PLAN in the environment: {exc}"}))
        return 2
    job = json.loads(os.environ.get("CONVEYOR_JOB") or "{}")
    user, password = credentials(os.environ.get("CONVEYOR_SOURCE_DSN", ""))
    app_name = f"conveyor extract {job.get('relation', plan.get('relation', '?'))}"
    try:
        spark = session(plan, app_name)
        frame = read(spark, plan, user, password)
        partitions = frame.rdd.getNumPartitions()
        write(frame, plan)
        result = {
            "spark_version": spark.version,
            "master": spark.sparkContext.master,
            "application_id": spark.sparkContext.applicationId,
            "partitions": partitions,
            "seconds": round(time.monotonic() - began, 3),
        }
        print(f"{RESULT} " + json.dumps(result), flush=True)
        spark.stop()
        return 0
    except Exception as exc:
        report = describe_error(exc, [password or ""])
        if not getattr(exc, "java_exception", None):
            tail = traceback.format_exc(limit=3).strip().splitlines()[-3:]
            report["detail"] = "\n".join(tail).replace(password or "\0", "***")
        print(f"{ERROR} " + json.dumps(report), flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
