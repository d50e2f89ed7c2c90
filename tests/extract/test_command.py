"""The ``command`` job type: an external program writes the parts, Conveyor checks and commits them."""

from __future__ import annotations

import json
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest

from conveyor.validate.preflight import PreflightError

from .conftest import (
    columns,
    extract,
    extract_state,
    lake,
    load,
    manifest_table,
    result_of,
    warehouse_rows,
    write_project,
)

PASSWORD = "s3cr3t-Pa55word"

SCRIPT = '''\
"""A stand-in for a container: extract the job's table with psycopg, write one part."""
import json, os, sys
from urllib.parse import unquote, urlsplit

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.design.types import parse_type

mode = sys.argv[1]
job = json.loads(os.environ["CONVEYOR_JOB"])
dsn = os.environ["CONVEYOR_SOURCE_DSN"]
folder = os.environ["CONVEYOR_EXTRACT_DIR"]
with open(os.environ["EVIDENCE"], "w") as handle:
    json.dump({
        "argv": sys.argv,
        "cmdline": open("/proc/self/cmdline", "rb").read().decode().split("\\0"),
        "job": os.environ["CONVEYOR_JOB"],
        "job_file": open(sys.argv[2]).read(),
        "folder": folder,
        "cwd": os.getcwd(),
    }, handle)
if mode == "fail":
    print("line that scrolls away", file=sys.stderr)
    print(f"could not log in to {dsn}", file=sys.stderr)
    print(f"password tried: {unquote(urlsplit(dsn).password)}", file=sys.stderr)
    print("boom: upstream said no", file=sys.stderr)
    sys.exit(1)
if mode == "nothing":
    sys.exit(0)
schema = pa.schema([(name, parse_type(kind).arrow) for name, kind in job["columns"]])
if mode == "wrong-schema":
    schema = schema.set(schema.get_field_index("amount"), pa.field("amount", pa.float64()))
names = ", ".join(name for name, _ in job["columns"])
with psycopg.connect(dsn) as conn:
    rows = conn.execute(f"SELECT {names} FROM {job['upstream_schema']}.{job['upstream_table']}").fetchall()
data = [list(column) for column in zip(*rows)] if rows else [[] for _ in job["columns"]]
if mode == "wrong-schema":
    data[schema.get_field_index("amount")] = [None if v is None else float(v) for v in data[2]]
pq.write_table(pa.table(data, schema=schema), os.path.join(folder, "part-00000.parquet"))
'''


@pytest.fixture
def project(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> Path:
    pg.execute(
        "CREATE TABLE t (id integer PRIMARY KEY, name text, amount numeric(10,2), at timestamptz);"
        "INSERT INTO t VALUES (1, 'ä 😀', 12.34, '2024-01-01 00:00:00.000001+02'), (2, NULL, -0.01, NULL),"
        " (3, 'c', NULL, '2024-12-31 23:59:59.999999+00')"
    )
    # trust auth ignores the password, so it only tests that it never shows
    monkeypatch.setenv("UP_DSN", pg_dsn.replace("postgres@", f"postgres:{quote(PASSWORD, safe='')}@"))
    monkeypatch.setenv("EVIDENCE", str(tmp_path / "evidence.json"))
    script = tmp_path / "extract_job.py"
    script.write_text(SCRIPT, encoding="utf-8")
    design = {
        "columns": columns(("id", "integer"), ("name", "text"), ("amount", "decimal(10,2)"), ("at", "timestamptz")),
        "constraints": {"primary_key": ["id"]},
        "extract": {"job_type": "command", "command": f"{sys.executable} {script} ok {{job_file}} {{relation}}"},
    }
    return write_project(tmp_path / "p", "postgres", designs={"t": design})


def set_mode(root: Path, mode: str) -> None:
    path = root / "schemas/up/t.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(" ok {job_file}", f" {mode} {{job_file}}"), encoding="utf-8"
    )


def evidence(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "evidence.json").read_text(encoding="utf-8"))


@pytest.mark.postgres
def test_command_job_commits_the_parts_it_writes(tmp_path: Path, project: Path, pg) -> None:
    outcome = extract(project)
    assert outcome.ok, outcome.extract
    manifest = lake(project).latest("up", "up.t")
    assert manifest is not None and manifest.job_type == "command" and manifest.rows == 3
    assert manifest.extract_id == result_of(outcome, "up.t").extract_id
    rows = sorted(manifest_table(manifest).to_pylist(), key=lambda r: r["id"])
    upstream = pg.execute("SELECT id, name, amount, at FROM t ORDER BY id").fetchall()
    assert [(r["id"], r["name"], r["amount"], r["at"]) for r in rows] == upstream

    seen = evidence(tmp_path)
    assert seen["argv"][1:] == ["ok", seen["argv"][2], "up.t"]
    assert seen["cwd"] == str(project)
    assert Path(seen["folder"]) == manifest.folder
    assert json.loads(seen["job"])["relation"] == "up.t" == json.loads(seen["job_file"])["relation"]
    assert not Path(seen["argv"][2]).exists()  # the job file is removed afterwards
    for shown in (json.dumps(seen), manifest.query, json.dumps(manifest.to_json())):
        assert PASSWORD not in shown and "127.0.0.1" not in shown, "the DSN must not reach a command line"

    load(project)
    assert warehouse_rows(project, "up.t", "id")[0][:3] == (1, "ä 😀", Decimal("12.34"))


@pytest.mark.postgres
def test_failing_command_reports_its_stderr_tail_without_the_password(tmp_path: Path, project: Path, cli) -> None:
    set_mode(project, "fail")
    result = cli(project, "extract")
    assert result.code == 1
    assert "up.t" in result.stdout and 'the extract command of "up.t" exited with 1' in result.stdout
    assert "boom: upstream said no" in result.stdout
    state = extract_state(project)["up.t"]
    assert state.status == "failed" and "boom: upstream said no" in state.error
    assert PASSWORD not in result.output and PASSWORD not in state.error
    assert quote(PASSWORD, safe="") not in result.output
    assert lake(project).latest("up", "up.t") is None


@pytest.fixture
def odd_password_project(project: Path, pg_dsn: str, monkeypatch) -> tuple[Path, str]:
    odd = "pa@ss:w0rd/1"
    monkeypatch.setenv("UP_DSN", pg_dsn.replace("postgres@", f"postgres:{quote(odd, safe='')}@"))
    set_mode(project, "fail")
    return project, odd


@pytest.mark.postgres
def test_percent_encoded_password_is_masked_in_its_decoded_form(odd_password_project: tuple[Path, str]) -> None:
    project, odd = odd_password_project
    outcome = extract(project)
    error = result_of(outcome, "up.t").error
    assert "boom: upstream said no" in error
    assert odd not in error, error


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("wrong-schema", 'part-00000.parquet of "up.t" has schema'),
        ("nothing", 'the extract of "up.t" left no part-*.parquet files'),
    ],
)
def test_command_output_is_checked_before_commit(project: Path, mode: str, message: str) -> None:
    set_mode(project, mode)
    outcome = extract(project)
    error = result_of(outcome, "up.t").error
    assert message in error, error
    if mode == "wrong-schema":
        assert "amount: double" in error and "amount: decimal128(10, 2)" in error
    assert lake(project).latest("up", "up.t") is None
    table_dir = project / "lake/data/up/up.t"
    assert not [p for p in table_dir.iterdir() if p.is_dir()]


@pytest.mark.postgres
def test_command_template_with_an_unknown_placeholder_is_refused(project: Path) -> None:
    path = project / "schemas/up/t.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("{relation}", "{job_file_dir}"), encoding="utf-8")
    with pytest.raises(PreflightError) as refused:  # before anything is extracted
        extract(project)
    error = refused.value.render()
    assert "is not a valid template" in error and "{job_file}" in error
    assert lake(project).latest("up", "up.t") is None


@pytest.mark.postgres
def test_command_with_missing_program_fails_clearly(project: Path) -> None:
    path = project / "schemas/up/t.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(sys.executable, "/nonexistent/python"), encoding="utf-8")
    error = result_of(extract(project), "up.t").error
    assert 'the extract command of "up.t" was not found: /nonexistent/python' in error


SQLITE_SCRIPT = textwrap.dedent(
    """\
    import json, os, sqlite3
    import pyarrow as pa, pyarrow.parquet as pq
    job = json.loads(os.environ["CONVEYOR_JOB"])
    rows = sqlite3.connect(os.environ["CONVEYOR_SOURCE_DSN"]).execute("SELECT id, name FROM people").fetchall()
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    table = pa.table([[r[0] for r in rows], [r[1] for r in rows]], schema=schema)
    pq.write_table(table, os.path.join(os.environ["CONVEYOR_EXTRACT_DIR"], "part-00000.parquet"))
    """
)


def sqlite_command_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """A project whose table up.people (rows (1, ``name``) and (2, NULL)) is extracted by a command job."""
    import sqlite3

    root = tmp_path / "p"
    root.mkdir()
    con = sqlite3.connect(root / "up.db")
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO people VALUES (1, ?), (2, NULL)", (name,))
    con.commit()
    con.close()
    (tmp_path / "job.py").write_text(SQLITE_SCRIPT, encoding="utf-8")
    monkeypatch.setenv("UP_DSN", "up.db")
    design = {
        "columns": columns(("id", "bigint"), ("name", "text")),
        "extract": {"job_type": "command", "command": f"{sys.executable} {tmp_path / 'job.py'}"},
    }
    write_project(root, "sqlite", designs={"people": design})
    return root


def test_command_job_on_a_sqlite_source(tmp_path: Path, monkeypatch) -> None:
    root = sqlite_command_project(tmp_path, monkeypatch, "a")
    outcome = extract(root)
    assert outcome.ok, outcome.extract
    assert manifest_table(lake(root).latest("up", "up.people")).to_pylist() == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": None},
    ]
