"""The ``spark`` job type without a JVM: settings, commands, secrets and the conversion back.

These tests need no pyspark and no Java. The submit-command test runs a stand-in for
``spark-submit`` that executes the planned SQL with psycopg and writes Parquet the way
Spark does, so the whole path (plan, environment, staging, exact conversion, manifest)
runs in a second.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conveyor.design.types import SqlType, parse_type
from conveyor.errors import ConveyorError, ExtractError
from conveyor.extract import spark_app
from conveyor.extract.jobs import ExtractJob
from conveyor.extract.runners import RunnerInput
from conveyor.extract.runners import spark as spark_runner
from conveyor.extract.runners.spark import (
    SparkPlan,
    SparkRunner,
    SparkSettings,
)
from conveyor.sources import open_source
from conveyor.sources.base import ReadRequest
from conveyor.sources.jdbc import MySQLJdbc, PostgresJdbc, normalize
from conveyor.sources.verdict import ColumnRef

from .conftest import (
    committed,
    extract,
    extract_state,
    manifest_table,
    pg_run,
    reachable,
    result_of,
    write_project,
)

REF = ColumnRef("up", "public", "t", "c", "x")


def job(**options: Any) -> ExtractJob:
    return ExtractJob("up.t", "up", "postgres", "public", "t", (("id", "integer"),), job_type="spark", options=options)


# ----------------------------------------------------------------------------- settings


def test_settings_default_to_local_mode() -> None:
    settings = SparkSettings.resolve(job(), environ={})
    assert (settings.master, settings.submit, settings.jars, settings.conf) == ("local[*]", None, [], {})
    assert settings.local


def test_environment_overrides_the_configuration() -> None:
    configured = job(spark={"master": "spark://a:7077", "jars": ["/x.jar"], "conf": {"a": "1", "b": "2"}})
    assert SparkSettings.resolve(configured, environ={}).master == "spark://a:7077"
    env = {
        "CONVEYOR_SPARK_MASTER": "local[2]",
        "CONVEYOR_SPARK_JARS": "/y.jar, /z.jar",
        "CONVEYOR_SPARK_CONF": '{"b": "3"}',
        "CONVEYOR_SPARK_SUBMIT": "spark-submit --deploy-mode client",
    }
    settings = SparkSettings.resolve(configured, environ=env)
    assert settings.master == "local[2]"
    assert settings.jars == ["/y.jar", "/z.jar"]
    assert settings.conf == {"a": "1", "b": "3"}
    assert settings.submit == "spark-submit --deploy-mode client" and not settings.local


def test_bad_conf_json_is_a_clear_error() -> None:
    with pytest.raises(ExtractError, match="CONVEYOR_SPARK_CONF is not valid JSON"):
        SparkSettings.resolve(job(), environ={"CONVEYOR_SPARK_CONF": "{nope"})


def plan(**extra: Any) -> SparkPlan:
    return SparkPlan(
        relation="up.t",
        master="spark://m:7077",
        jars=["/usr/share/java/postgresql.jar"],
        conf={"spark.executor.memory": "2g", "spark.sql.session.timeZone": "Europe/Paris"},
        jdbc={"url": "jdbc:postgresql://h:5432/db", "driver": "org.postgresql.Driver", "options": {}},
        dbtable="(SELECT 1) AS conveyor_q",
        output="file:///tmp/out",
        compression="zstd",
        **extra,
    )


def test_local_mode_runs_the_module_with_this_python() -> None:
    argv = SparkRunner()._argv(SparkSettings(), plan())
    assert argv == [sys.executable, "-m", "conveyor.extract.spark_app"]


def test_submit_command_gets_master_jars_conf_and_the_app_file() -> None:
    argv = SparkRunner()._argv(SparkSettings(submit="spark-submit --deploy-mode client"), plan())
    assert argv[:5] == ["spark-submit", "--deploy-mode", "client", "--master", "spark://m:7077"]
    assert argv[5:7] == ["--jars", "/usr/share/java/postgresql.jar"]
    confs = [argv[i + 1] for i, word in enumerate(argv) if word == "--conf"]
    assert "spark.executor.memory=2g" in confs
    assert "spark.sql.session.timeZone=UTC" in confs  # fixed: the type mapping depends on it
    assert "spark.driver.extraJavaOptions=-Duser.timezone=UTC" in confs
    assert argv[-1] == str(Path(spark_app.__file__).resolve())


def test_submit_template_places_the_app_itself() -> None:
    settings = SparkSettings(submit="my-submit --cluster c --app {app} --jars {jars}")
    argv = SparkRunner()._argv(settings, plan())
    assert argv == [
        "my-submit",
        "--cluster",
        "c",
        "--app",
        str(Path(spark_app.__file__).resolve()),
        "--jars",
        "/usr/share/java/postgresql.jar",
    ]


def test_plan_json_holds_no_secret() -> None:
    url = PostgresJdbc.jdbc_url("postgresql://etl:s3cret%21@db.example:6543/shop?sslmode=require&password=x")
    assert url == "jdbc:postgresql://db.example:6543/shop?sslmode=require"
    assert "s3cret" not in plan(predicates=[url]).to_json()
    my = MySQLJdbc.jdbc_url("mysql://root:pw@127.0.0.1:3307/shop")
    assert my.startswith("jdbc:mysql://127.0.0.1:3307/shop?") and "pw" not in my
    assert "tinyInt1isBit=false" in my and "yearIsDateType=false" in my


def test_a_dsn_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ExtractError, match="postgresql:// URL DSN"):
        PostgresJdbc.jdbc_url("host=db user=etl password=secret")


# ----------------------------------------------------------------------------- the application's helpers


def test_app_reads_credentials_from_the_dsn() -> None:
    assert spark_app.credentials("postgresql://etl:p%40ss@h/db") == ("etl", "p@ss")
    assert spark_app.credentials("postgresql://h/db") == (None, None)


def test_app_conf_keeps_the_fixed_settings_and_appends_the_jvm_zone() -> None:
    conf = spark_app.spark_conf(
        {
            "conf": {"spark.sql.session.timeZone": "Europe/Paris", "spark.driver.extraJavaOptions": "-Xss4m"},
            "jars": ["/a.jar", "/b.jar"],
        }
    )
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.driver.extraJavaOptions"] == "-Xss4m -Duser.timezone=UTC"
    assert conf["spark.executor.extraJavaOptions"] == "-Duser.timezone=UTC"
    assert conf["spark.jars"] == "/a.jar,/b.jar"


def test_app_error_report_masks_the_password() -> None:
    report = spark_app.describe_error(RuntimeError("login failed for pw hunter2"), ["hunter2"])
    assert "hunter2" not in report["message"] and "***" in report["message"]
    assert report["transient"] is False


def test_app_without_its_settings_reports_an_error(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv("CONVEYOR_SPARK_APP", raising=False)
    assert spark_app.main() == 2
    assert capsys.readouterr().out.startswith("CONVEYOR_SPARK_ERROR ")


# ----------------------------------------------------------------------------- converting back


def test_normalize_turns_spark_utc_instants_into_naive_timestamps() -> None:
    instants = pa.array([datetime(2024, 3, 10, 2, 30, tzinfo=UTC), None], pa.timestamp("us", tz="UTC"))
    naive = normalize(instants, SqlType("timestamp"), REF)
    assert naive.type == pa.timestamp("us") and naive.to_pylist() == [datetime(2024, 3, 10, 2, 30), None]
    lists = pa.array([[datetime(2024, 1, 1, tzinfo=UTC)], None], pa.list_(pa.timestamp("us", tz="UTC")))
    assert normalize(lists, parse_type("timestamp[]"), REF).to_pylist() == [[datetime(2024, 1, 1)], None]


def test_normalize_narrows_doubles_only_when_exact() -> None:
    exact = pa.array([0.5, float(pa.scalar(0.1, pa.float32()).as_py()), None, float("nan")], pa.float64())
    assert normalize(exact, SqlType("real"), REF).type == pa.float32()
    with pytest.raises(ExtractError, match="not a 32-bit float"):
        normalize(pa.array([0.1], pa.float64()), SqlType("real"), REF)


# ----------------------------------------------------------------------------- without pyspark


@pytest.fixture
def no_pyspark(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """pyspark cannot be found, for this test only (validate caches what it found: cleared around it)."""
    from conveyor.validate.jobs import importable

    real = spark_runner.importlib.util.find_spec
    monkeypatch.setattr(
        spark_runner.importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a)
    )
    importable.cache_clear()
    yield
    importable.cache_clear()


@pytest.mark.usefixtures("no_pyspark")
def test_without_pyspark_a_spark_table_is_refused_before_anything_is_extracted(tmp_path: Path) -> None:
    db = tmp_path / "up.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE a (id INTEGER)")
        conn.execute("CREATE TABLE b (id INTEGER)")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("INSERT INTO b VALUES (2)")
    designs: dict[str, dict[str, Any]] = {
        "up.a": {"columns": [{"name": "id", "type": "bigint"}], "extract": {"job_type": "spark"}},
        "up.b": {"columns": [{"name": "id", "type": "bigint"}]},
    }
    root = write_project(tmp_path / "p", {"up": {"type": "sqlite", "dsn": str(db)}}, designs, job_type="arrow")
    with pytest.raises(ConveyorError) as refused:
        extract(root)
    text = refused.value.render()
    assert "schemas/up/a.yaml" in text and "pyspark" in text and "pip install conveyor[spark]" in text
    assert refused.value.exit_code == 2
    assert extract_state(root) == {}  # nothing was extracted, not even the arrow table


@pytest.mark.usefixtures("no_pyspark")
def test_the_runner_still_says_what_to_install_when_pyspark_is_missing() -> None:
    """A plan made elsewhere (say, validated on another machine) still fails the table clearly."""
    with pytest.raises(ExtractError, match=r'pip install "conveyor\[spark\]"'):
        spark_runner.require_pyspark()


def test_a_source_spark_cannot_read_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "up.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE a (id INTEGER)")
    designs = {"up.a": {"columns": [{"name": "id", "type": "bigint"}]}}
    root = write_project(tmp_path / "p", {"up": {"type": "sqlite", "dsn": str(db)}}, designs, job_type="spark")
    monkeypatch.setenv("CONVEYOR_SPARK_SUBMIT", "spark-submit")  # no local pyspark needed to get this far
    outcome = extract(root)
    assert "reads postgres and mysql sources" in result_of(outcome, "up.a").error


# ----------------------------------------------------------------------------- a stand-in for spark-submit

FAKE_SUBMIT = textwrap.dedent(
    """
    # Plays spark-submit: runs the planned SQL with psycopg and writes Parquet the way Spark
    # does (uuid and json as strings, naive timestamps as UTC instants, decimals as decimals).
    import json, os, sys, time, uuid
    from urllib.parse import urlsplit
    import psycopg, pyarrow as pa, pyarrow.parquet as pq

    app = json.loads(os.environ["CONVEYOR_SPARK_APP"])
    queue = os.environ["CONVEYOR_SPARK_QUEUE"]
    dsns = json.loads(os.environ["CONVEYOR_SOURCE_DSNS"])
    record = {"argv": sys.argv, "dsn_in_argv": any(d in a for d in dsns.values() for a in sys.argv), "app": app}
    record["plans"] = []


    def one(request):
        plan = request["plan"]
        dsn = dsns[request["source"]]
        out = urlsplit(plan["output"]).path
        os.makedirs(out)
        predicates = plan.get("predicates") or ["TRUE"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            for i, predicate in enumerate(predicates):
                cur = conn.execute(f"SELECT * FROM {plan['dbtable']} WHERE {predicate}".encode())
                names = [d.name for d in cur.description]
                rows = cur.fetchall()
                columns = {}
                for j, name in enumerate(names):
                    values = [r[j] for r in rows]
                    if any(isinstance(v, uuid.UUID) for v in values):
                        values = [None if v is None else str(v) for v in values]
                    if any(isinstance(v, (dict, list)) for v in values) and name not in ("ai",):
                        values = [None if v is None else json.dumps(v) for v in values]
                    columns[name] = pa.array(values)
                    if pa.types.is_timestamp(columns[name].type) and columns[name].type.tz is None:
                        columns[name] = columns[name].cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
                table = pa.table(columns).drop_columns([c for c in plan.get("drop", []) if c in names])
                pq.write_table(table, os.path.join(out, f"part-{i:05d}-fake.c000.zstd.parquet"))
        open(os.path.join(out, "_SUCCESS"), "w").close()
        return {"ok": True, "partitions": len(predicates), "spark_version": "fake"}


    # the queue protocol of conveyor/extract/spark_app.py, one request at a time
    done = set()
    while True:
        names = sorted(os.listdir(queue))
        for name in names:
            if name.endswith(".request.json") and name not in done:
                done.add(name)
                request = json.load(open(os.path.join(queue, name)))
                record["plans"].append(request["plan"])
                try:
                    answer = one(request)
                except Exception as exc:
                    answer = {"ok": False, "error": {"message": f"{type(exc).__name__}: {exc}"}}
                open(os.environ["FAKE_RECORD"], "w").write(json.dumps(record))
                tmp = os.path.join(queue, name + ".tmp")
                open(tmp, "w").write(json.dumps(answer))
                os.replace(tmp, os.path.join(queue, name.replace(".request.json", ".result.json")))
        if "stop" in names:
            break
        time.sleep(0.02)
    """
)


@pytest.fixture
def pg_dsn() -> Any:
    import uuid as uuidlib

    import psycopg

    from .conftest import PG_ADMIN

    if not reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"conveyor_spu_{uuidlib.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.mark.postgres
def test_submit_command_path_converts_and_commits(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pg = pg_run(pg_dsn)
    pg(
        "CREATE TABLE t (id integer, u uuid, ts timestamp(6), amount numeric(12,2), j jsonb, k text);"
        "INSERT INTO t SELECT g, md5(g::text)::uuid, timestamp '2024-03-10 02:30:00' + g * interval '1 us', "
        "g * 1.25, jsonb_build_object('g', g), 'k' || (g % 10) FROM generate_series(1, 100) g;"
        "INSERT INTO t (id) VALUES (0)"
    )
    columns = [
        ("id", "integer"),
        ("u", "uuid"),
        ("ts", "timestamp"),
        ("amount", "decimal(12,2)"),
        ("j", "json"),
        ("k", "text"),
    ]
    design = {
        "source_table": "public.t",
        "columns": [{"name": n, "type": t} for n, t in columns],
        "extract": {"split_by": "k", "partitions": 3},
    }
    sources = {"up": {"type": "postgres", "dsn": "${UP_DSN}"}}
    spark_root = write_project(tmp_path / "spark", sources, {"up.t": design}, job_type="spark")
    arrow_root = write_project(tmp_path / "arrow", sources, {"up.t": design}, job_type="arrow")
    fake = tmp_path / "fake_submit.py"
    fake.write_text(FAKE_SUBMIT, encoding="utf-8")
    record = tmp_path / "record.json"
    monkeypatch.setenv("UP_DSN", pg_dsn)
    monkeypatch.setenv("FAKE_RECORD", str(record))
    monkeypatch.setenv("CONVEYOR_SPARK_SUBMIT", f"{sys.executable} {fake} {{app}}")
    outcome = extract(spark_root)
    assert result_of(outcome, "up.t").status == "succeeded", result_of(outcome, "up.t").error
    assert extract(arrow_root).ok
    seen = json.loads(record.read_text())
    assert not seen["dsn_in_argv"]
    assert seen["argv"][-1].endswith("conveyor/extract/spark_app.py")
    (seen_plan,) = seen["plans"]
    assert len(seen_plan["predicates"]) == 3  # a text key: predicates at the quantiles
    (spark,) = committed(spark_root, "up", "up.t")
    (arrow,) = committed(arrow_root, "up", "up.t")
    assert spark.job_type == "spark" and spark.rows == 101
    left = manifest_table(arrow).sort_by("id")
    right = manifest_table(spark).sort_by("id")
    assert right.schema.equals(left.schema) and right.equals(left)
    assert spark.folder is not None and not (spark.folder / "_spark").exists()


@pytest.mark.postgres
def test_time_wire_form_matches_arrow(pg_dsn: str) -> None:
    """PostgreSQL ``time`` travels as microseconds (Spark has no time type) and comes back exactly."""
    pg = pg_run(pg_dsn)
    pg(
        "CREATE TABLE w (id integer, tm time(6));"
        "INSERT INTO w VALUES (1, '00:00:00'), (2, '23:59:59.999999'), (3, '12:00:00.5'), (4, NULL), (5, '01:02:03')"
    )
    request = ReadRequest("public", "w", (("id", SqlType("integer")), ("tm", SqlType("time"))))
    with open_source("postgres", "up", pg_dsn) as source:
        expected = pa.Table.from_batches(list(source.read(request)))
        engine = PostgresJdbc(source, request)
        sql = engine.select_sql(None)
        assert "EXTRACT(EPOCH FROM" in sql
        cur = source.conn.execute(sql.encode())  # type: ignore[attr-defined]
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
    spark_like = pa.RecordBatch.from_pydict({n: [r[i] for r in rows] for i, n in enumerate(names)})
    converted = engine.convert(spark_like, request.arrow_schema)
    assert converted.to_pydict() == expected.to_pydict()


def test_time_outside_a_day_raises() -> None:
    from conveyor.sources.jdbc import _time_from_micros

    assert _time_from_micros(pa.array([0, 86_399_999_999]), REF).to_pylist()[1].isoformat() == "23:59:59.999999"
    with pytest.raises(ExtractError, match="not a time of day"):
        _time_from_micros(pa.array([86_400_000_000]), REF)


def test_bounds_are_utc_text() -> None:
    from conveyor.extract.runners.spark import bound_text

    paris = datetime(2024, 1, 1, 12, tzinfo=UTC).astimezone(tz=__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert bound_text(paris) == "2024-01-01 12:00:00.000000"
    assert bound_text(datetime(2024, 1, 1) + timedelta(microseconds=5)) == "2024-01-01 00:00:00.000005"
    assert bound_text(Decimal(7)) == "7" and bound_text(-3) == "-3"


def test_a_timeout_ends_the_whole_spark_process_group(tmp_path: Path) -> None:
    """A table on its own (no run session) gets an application of its own, ended with it."""
    from conveyor.extract.runners import RunnerInput

    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time; "
        f"child = subprocess.Popen(['sleep', '60']); open({str(pid_file)!r}, 'w').write(str(child.pid)); "
        "time.sleep(60)"
    )
    settings = SparkSettings(submit=f"{sys.executable} -c {json.dumps(script)} {{app}}")
    given = RunnerInput(tmp_path, "postgresql://u:pw@h/db", tmp_path, timeout_s=2)
    with pytest.raises(ExtractError, match="timed out after 2 s"):
        SparkRunner()._launch(job(), given, settings, plan())
    child = int(pid_file.read_text())
    # the grandchild (the JVM's stand-in) is gone too: no such process, or a zombie not yet reaped
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith(("Z", "X"))
    assert not (tmp_path / "_queue").exists()


def test_one_application_serves_every_table_of_a_run_and_fails_only_its_table(tmp_path: Path) -> None:
    """Two tables, one application: one answer fails its table, the other table goes on."""
    from conveyor.extract.runners.spark_application import SparkApplications

    server = tmp_path / "server.py"
    server.write_text(
        textwrap.dedent(
            """
            import json, os, sys, time
            queue = os.environ["CONVEYOR_SPARK_QUEUE"]
            dsns = json.loads(os.environ["CONVEYOR_SOURCE_DSNS"])
            open(os.path.join(sys.argv[1], f"started-{os.getpid()}"), "w").close()
            done = set()
            while True:
                names = sorted(os.listdir(queue))
                for name in names:
                    if name.endswith(".request.json") and name not in done:
                        done.add(name)
                        request = json.load(open(os.path.join(queue, name)))
                        ok = request["relation"] != "up.bad"
                        answer = {"ok": ok, "partitions": 1, "user": dsns[request["source"]].split("@")[0]}
                        if not ok:
                            answer["error"] = {"message": "ERROR: relation bad does not exist"}
                        result = os.path.join(queue, name.replace(".request.json", ".result.json"))
                        open(result + ".tmp", "w").write(json.dumps(answer))
                        os.replace(result + ".tmp", result)
                if "stop" in names:
                    sys.exit(0)
                time.sleep(0.02)
            """
        )
    )
    settings = SparkSettings(submit=f"{sys.executable} {server} {tmp_path} {{app}}")
    scratch = tmp_path / "run"
    apps = SparkApplications(scratch, {"up": "postgresql://u:hunter2@h/db"}, tmp_path)
    runner = SparkRunner()
    try:
        for relation in ("up.a", "up.bad", "up.b"):
            given = RunnerInput(tmp_path, "postgresql://u:hunter2@h/db", tmp_path, timeout_s=30, session=apps)
            table = ExtractJob(relation, "up", "postgres", "public", "t", (("id", "integer"),), job_type="spark")
            if relation == "up.bad":
                with pytest.raises(ExtractError, match=r'the Spark job of "up\.bad" failed: ERROR: relation bad'):
                    runner._launch(table, given, settings, plan())
            else:
                assert runner._launch(table, given, settings, plan())["ok"]
    finally:
        apps.close()
    assert len(list(tmp_path.glob("started-*"))) == 1, "one application for the three tables"
    assert not scratch.exists()


def test_an_application_that_cannot_start_fails_each_table_without_starting_again(tmp_path: Path) -> None:
    from conveyor.extract.runners.spark_application import SparkApplications

    failing = tmp_path / "failing.py"
    failing.write_text(
        "import os, sys\n"
        "open(os.path.join(sys.argv[1], f'started-{os.getpid()}'), 'w').close()\n"
        'print(\'CONVEYOR_SPARK_ERROR {"message": "JAVA_HOME is not set"}\')\n'
        "sys.exit(1)\n"
    )
    settings = SparkSettings(submit=f"{sys.executable} {failing} {tmp_path} {{app}}")
    apps = SparkApplications(tmp_path / "run", {"up": "postgresql://u@h/db"}, tmp_path)
    try:
        for relation in ("up.a", "up.b"):
            given = RunnerInput(tmp_path, "postgresql://u@h/db", tmp_path, timeout_s=30, session=apps)
            table = ExtractJob(relation, "up", "postgres", "public", "t", (("id", "integer"),), job_type="spark")
            with pytest.raises(ExtractError, match="did not start: JAVA_HOME is not set"):
                SparkRunner()._launch(table, given, settings, plan())
    finally:
        apps.close()
    assert len(list(tmp_path.glob("started-*"))) == 1


@pytest.mark.postgres
def test_cancelling_a_run_ends_its_spark_application(pg_dsn: str, tmp_path: Path) -> None:
    """SIGINT while tables wait on the application: the run ends as cancelled, the application
    (a stand-in that never answers nor stops by itself) and its children are gone, no scratch left."""
    import os
    import signal
    import subprocess
    import time

    pg_run(pg_dsn)("CREATE TABLE a (id integer); CREATE TABLE b (id integer)")
    designs = {f"up.{t}": {"source_table": f"public.{t}", "columns": [{"name": "id", "type": "integer"}]} for t in "ab"}
    root = write_project(tmp_path / "p", {"up": {"type": "postgres", "dsn": "${UP_DSN}"}}, designs, job_type="spark")
    stuck = tmp_path / "stuck.py"
    stuck.write_text(
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        "open(os.path.join(sys.argv[1], 'pids'), 'w').write(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(120)\n"
    )
    env = {
        **os.environ,
        "UP_DSN": pg_dsn,
        "CONVEYOR_SPARK_SUBMIT": f"{sys.executable} {stuck} {tmp_path} {{app}}",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "-p", str(root), "extract"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not list((root / "lake" / "_runs").glob("*/spark/spark-1/*.request.json")):
        assert time.monotonic() < deadline and proc.poll() is None, "no table reached the application"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    time.sleep(0.5)
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ")[1].startswith(("Z", "X")), f"{pid} survived"
    assert not list((root / "lake" / "_runs").iterdir())
