"""The PySpark application of the ``spark`` job type: every table of an extract run in one SparkSession.

This file travels to wherever Spark runs (``python -m conveyor.extract.spark_app`` in
local mode, or the path of this file given to ``spark-submit`` or a managed cluster's
submit command), so it imports nothing but the standard library and pyspark.

Conveyor starts it once per extract run (per distinct Spark settings), so the JVM and the
SparkSession are paid for once, not once per table. Its settings come from the
environment, never from its command line:

* ``CONVEYOR_SPARK_APP``: the master, the JDBC jars and the Spark settings (no secret).
* ``CONVEYOR_SOURCE_DSNS``: a JSON object of the run's sources and their resolved DSNs;
  only user and password are used, and they go to Spark as JDBC properties (Spark redacts
  ``password`` in its UI and logs).
* ``CONVEYOR_SPARK_QUEUE``: a folder both sides see (in the lake). Conveyor drops one
  ``<id>.request.json`` per table into it (the planned read: JDBC URL without
  credentials, the ``dbtable`` subquery, the partitioning, the output folder; no secret);
  this program runs each on a thread of its own, as one Spark job group, and answers with
  ``<id>.result.json`` (``{"ok": true, ...}`` or ``{"ok": false, "error": {...}}``), so one
  table failing fails only that table. ``<id>.cancel`` cancels a table's Spark jobs;
  ``stop`` ends the program once the requests in flight are answered.

It writes each table's Parquet files into that table's own output folder. Conveyor
converts them to the design's exact Arrow types and commits each table's extract; this
program never touches a manifest. A failure to start at all is one line
``CONVEYOR_SPARK_ERROR {...}`` on standard output and exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any
from urllib.parse import unquote, urlsplit

ERROR = "CONVEYOR_SPARK_ERROR"
#: the files of the request queue (a folder both sides see; see docs/spark.md)
REQUEST_SUFFIX = ".request.json"
RESULT_SUFFIX = ".result.json"
CANCEL_SUFFIX = ".cancel"
READY = "ready.json"
STOP = "stop"

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


def _write_json(path: str, value: dict[str, Any]) -> None:
    """Write ``value`` to ``path`` whole or not at all (a reader never sees half a file)."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
    os.replace(temporary, path)


def run_request(spark: Any, queue: str, request: dict[str, Any], dsns: dict[str, str]) -> None:
    """Run one table's plan as a Spark job group of its own and write its result file."""
    began = time.monotonic()
    ident = str(request["id"])
    plan = request["plan"]
    user, password = credentials(dsns.get(str(request.get("source")), ""))
    context = spark.sparkContext
    try:
        # every Spark job of this table carries its id: a cancel file stops exactly them
        context.setJobGroup(ident, f"conveyor extract {plan.get('relation', '?')}", interruptOnCancel=True)
        frame = read(spark, plan, user, password)
        partitions = frame.rdd.getNumPartitions()
        write(frame, plan)
        result: dict[str, Any] = {
            "ok": True,
            "spark_version": spark.version,
            "master": context.master,
            "application_id": context.applicationId,
            "partitions": partitions,
            "seconds": round(time.monotonic() - began, 3),
        }
    except Exception as exc:
        result = {"ok": False, "error": describe_error(exc, [password or ""])}
        if not getattr(exc, "java_exception", None):
            tail = traceback.format_exc(limit=3).strip().splitlines()[-3:]
            result["error"]["detail"] = "\n".join(tail).replace(password or "\0", "***")
    _write_json(os.path.join(queue, f"{ident}{RESULT_SUFFIX}"), result)


def serve(spark: Any, queue: str, dsns: dict[str, str], poll_s: float = 0.05) -> None:
    """Run every request that appears in ``queue``, each on its own thread, until told to stop.

    Requests run side by side in the one SparkSession (Spark's scheduler shares the
    executors between their jobs); how many at a time is up to Conveyor, which sends a
    table's request only when one of its workers extracts that table.
    """
    started: dict[str, threading.Thread] = {}
    cancelled: set[str] = set()
    while True:
        names = sorted(os.listdir(queue))
        for name in names:
            if name.endswith(REQUEST_SUFFIX):
                ident = name[: -len(REQUEST_SUFFIX)]
                if ident in started:
                    continue
                with open(os.path.join(queue, name), encoding="utf-8") as handle:
                    request = json.load(handle)
                thread = threading.Thread(
                    target=run_request, args=(spark, queue, request, dsns), name=f"table-{ident}", daemon=True
                )
                started[ident] = thread
                thread.start()
            elif name.endswith(CANCEL_SUFFIX):
                ident = name[: -len(CANCEL_SUFFIX)]
                if ident not in cancelled:
                    cancelled.add(ident)
                    spark.sparkContext.cancelJobGroup(ident)
        if STOP in names and not any(t.is_alive() for t in started.values()):
            return
        time.sleep(poll_s)


def _reap_jvm(spark: Any) -> None:
    """Stop Spark and wait for the JVM pyspark started, so it ends with (and is counted in) this process."""
    gateway: Any = getattr(type(spark.sparkContext), "_gateway", None)
    proc = getattr(gateway, "proc", None)
    spark.stop()
    if proc is None:
        return  # spark-submit started us: the JVM is our parent
    with contextlib.suppress(Exception):
        gateway.shutdown()
    with contextlib.suppress(Exception):
        proc.stdin.close()  # the JVM ends when its stdin closes
        proc.wait(timeout=300)


def main() -> int:
    """Serve the requests of ``$CONVEYOR_SPARK_QUEUE`` in one SparkSession; errors go to standard output."""
    watch_parent()
    queue = os.environ.get("CONVEYOR_SPARK_QUEUE", "")
    try:
        app = json.loads(os.environ["CONVEYOR_SPARK_APP"])
        dsns = json.loads(os.environ.get("CONVEYOR_SOURCE_DSNS") or "{}")
        if not queue or not os.path.isdir(queue):
            raise ValueError(f"CONVEYOR_SPARK_QUEUE names no folder: {queue!r}")
    except (KeyError, ValueError) as exc:
        print(f"{ERROR} " + json.dumps({"message": f"no valid Spark application settings in the environment: {exc}"}))
        return 2
    passwords = [credentials(dsn)[1] or "" for dsn in dsns.values()]
    try:
        spark = session(app, app.get("name") or "conveyor extract")
        _write_json(
            os.path.join(queue, READY),
            {"spark_version": spark.version, "application_id": spark.sparkContext.applicationId},
        )
        serve(spark, queue, dsns)
        _reap_jvm(spark)
        return 0
    except Exception as exc:
        print(f"{ERROR} " + json.dumps(describe_error(exc, passwords)), flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
