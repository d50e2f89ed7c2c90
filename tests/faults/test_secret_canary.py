"""The secret canary: a recognisable secret in every place a secret can go, and zero hits anywhere.

One project holds a secret (the *canary*, a random marker plus the place's name) in each
place that can carry one: the password of a PostgreSQL source and of a PostgreSQL warehouse
(real roles with those passwords; trust auth does not check them, but they are in the DSNs), a
whole-URL DSN, dead-man URLs (the ping key in the path), notification URLs (a webhook token
in the path, in the query, an SMTP password, Slack tokens), all read from the credentials
file or the environment. Every command then runs, failing variants too (an unreachable host,
a table that does not exist upstream, a dead-man endpoint answering 500, an SMTP server that
is not there), plain and with ``-v``, ``--debug`` and ``--format json``, and the scheduler
runs for a while (a missed run alerted from its own process, and one run).

Then everything is searched for the marker: every command's stdout and stderr, the
scheduler's log, the request bodies the webhooks received, every file the project holds
(byte for byte, and Parquet, SQLite and DuckDB files read through their own readers, since
their pages may be compressed), the tracking store's rows, the DuckDB warehouse's strings and
comments, and the PostgreSQL warehouse's comments and strings.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest

FORKCLI = Path(__file__).with_name("forkcli.py")
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MARK = "kanari" + secrets.token_hex(5)  # every secret below starts with it; nothing else does


def canary(place: str) -> str:
    return f"{MARK}{place}"


# -- a webhook and dead-man endpoint on 127.0.0.1 ----------------------------------------------


@dataclass
class Hooks:
    """POSTs received (path, body); paths under /broken/ answer 500."""

    port: int = 0
    received: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.received]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    state = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with state.lock:
                state.received.append((self.path, body))
            self.send_response(500 if self.path.startswith("/broken/") else 200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# -- PostgreSQL: roles whose passwords are canaries, a source database and a warehouse ----------


@dataclass
class Postgres:
    reader: str
    writer: str
    source_db: str
    warehouse_db: str

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{database}"


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    try:
        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    pg = Postgres(*(f"conveyor_t_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("reader", "writer", "src", "wh")))
    owners = ((pg.reader, pg.source_db, "pgsource"), (pg.writer, pg.warehouse_db, "pgwarehouse"))
    with admin:
        for role, database, place in owners:
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{canary(place)}'".encode())
            admin.execute(f"CREATE DATABASE {database} OWNER {role}".encode())
    with psycopg.connect(pg.dsn(pg.source_db), autocommit=True) as con:
        con.execute(f"SET ROLE {pg.reader}".encode())
        con.execute("CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL, price numeric(10,2))")
        con.execute("INSERT INTO items VALUES (1, 'tea', 2.50), (2, 'cake', 3.75), (3, 'soup', NULL)")
    try:
        yield pg
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            for database in (pg.source_db, pg.warehouse_db):
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
                admin.execute(f"DROP DATABASE IF EXISTS {database}".encode())
            for role in (pg.reader, pg.writer):
                admin.execute(f"DROP ROLE IF EXISTS {role}".encode())


# -- the project -------------------------------------------------------------------------------

SETTINGS = """\
name: canaries
sources:
  shop:
    type: sqlite
    dsn: upstream.db
  pgsrc:
    type: postgres
    dsn: postgresql://{reader}:${{PG_SOURCE_PASSWORD}}@127.0.0.1:5432/{source_db}?connect_timeout=5
  pgbad:
    type: postgres
    dsn: postgresql://{reader}:${{PG_SOURCE_PASSWORD}}@127.0.0.1:5432/{source_db}
  down:
    type: postgres
    dsn: postgresql://{reader}:${{PG_DOWN_PASSWORD}}@127.0.0.1:1/nowhere?connect_timeout=2
lake:
  path: lake
environments:
  dev:
    type: duckdb
    dsn: warehouse.duckdb
  pipes:
    type: duckdb
    dsn: pipes.duckdb
  pg:
    type: postgres
    dsn: postgresql://{writer}:${{PG_WAREHOUSE_PASSWORD}}@127.0.0.1:5432/{warehouse_db}
  gone:
    type: postgres
    dsn: ${{GONE_WAREHOUSE_URL}}
default_environment: dev
defaults:
  jobs: 2
"""
DESIGNS = {
    "pgsrc/items.yaml": """\
name: pgsrc.items
description: Things on the menu
columns:
  - {name: id, type: bigint, not_null: true}
  - {name: label, type: text, description: What it is called}
  - {name: price, type: "decimal(10,2)"}
constraints:
  primary_key: [id]
""",
    # no such table upstream: every extract of it fails
    "pgbad/missing.yaml": "name: pgbad.missing\ncolumns:\n  - {name: id, type: bigint}\n",
    # its source is unreachable: every extract of it fails
    "down/thing.yaml": "name: down.thing\ncolumns:\n  - {name: id, type: bigint}\n",
}
GOOD = ["shop.*", "pgsrc.items", "mart.*"]
PIPELINES = {
    "nightly": """\
schedule: manual
environments: {primary: pipes}
selection: [shop.*, pgsrc.items, mart.*]
deadman: ${HC_URL}
notify:
  - {url: "${SLACK_URL}", on: [success, failure]}
  - {url: "json://127.0.0.1:PORT/hook?token=${HOOK_TOKEN}", on: [success, failure]}
  - {url: "json://hook:${HOOK_PASSWORD}@127.0.0.1:PORT/auth", on: [success]}
""",
    "broken": """\
schedule: manual
environments: {primary: pipes}
selection: [shop.*, down.*, pgbad.*]
deadman: ["http://127.0.0.1:PORT/broken/${HC_BROKEN_KEY}", "${HC_URL}"]
notify:
  - {url: "${FAILING_HOOK_URL}", on: [failure]}
  - {url: "mailto://etl:${SMTP_PASSWORD}@127.0.0.1:1?from=etl@example.com&to=ops@example.com", on: [failure]}
  - {url: "slack://${SLACK_TOKENS}", on: [failure]}
""",
    "scheduled": """\
schedule: nightly at 02:30 UTC
environments: {primary: pipes}
selection: [shop.*, mart.*]
grace: 30 min
deadman: ${HC_URL}
notify:
  - {url: "${SLACK_URL}", on: [success, failure]}
""",
}


def credentials(port: int) -> dict[str, str]:
    """Every secret of the project, each a canary."""
    return {
        "PG_SOURCE_PASSWORD": canary("pgsource"),
        "PG_DOWN_PASSWORD": canary("pgdown"),
        "PG_WAREHOUSE_PASSWORD": canary("pgwarehouse"),
        "GONE_WAREHOUSE_URL": f"postgresql://etl:{canary('gonewarehouse')}@127.0.0.1:1/gone?connect_timeout=2",
        "HC_URL": f"http://127.0.0.1:{port}/ping/{canary('hc')}",
        "HC_BROKEN_KEY": canary("hcbroken"),
        "SLACK_URL": f"json://127.0.0.1:{port}/slack/{canary('slack')}",
        "HOOK_TOKEN": canary("hooktoken"),
        "HOOK_PASSWORD": canary("hookpassword"),
        "FAILING_HOOK_URL": f"json://127.0.0.1:{port}/broken/{canary('failinghook')}",
        "SMTP_PASSWORD": canary("smtp"),
        "SLACK_TOKENS": f"{canary('slacka')}/{canary('slackb')}/{canary('slackc')}",
    }


def make_canary_project(build: Callable[..., Path], root: Path, pg: Postgres, port: int) -> dict[str, str]:
    """Write the project; the credentials file holds every secret but HC_URL, which the environment holds."""
    settings = SETTINGS.format(reader=pg.reader, writer=pg.writer, source_db=pg.source_db, warehouse_db=pg.warehouse_db)
    build(root, settings=settings, designs=DESIGNS)
    (root / "pipelines").mkdir()
    for name, text in PIPELINES.items():
        (root / "pipelines" / f"{name}.yaml").write_text(text.replace("PORT", str(port)))
    values = credentials(port)
    (root / ".env").write_text("".join(f"{k}='{v}'\n" for k, v in values.items() if k != "HC_URL"))
    return {"HC_URL": values["HC_URL"]}


# -- running everything ------------------------------------------------------------------------


@dataclass
class Ran:
    args: tuple[str, ...]
    code: int
    out: str


def cli_env(env: dict[str, str]) -> dict[str, str]:
    full = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **env}
    full.pop("CONVEYOR_PROJECT", None)
    if "CONVEYOR_CLOCK" not in env:
        full.pop("CONVEYOR_CLOCK", None)
    return full


def run_all(root: Path, env: dict[str, str], commands: list[tuple[str, ...]]) -> list[Ran]:
    """Each command line in a process of its own (forked by forkcli.py, which imports once)."""
    request = json.dumps({"root": str(root), "env": env, "commands": commands})
    done = subprocess.run(
        [sys.executable, str(FORKCLI)], input=request, env=cli_env(env), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [Ran(tuple(r["args"]), r["code"], r["out"]) for r in map(json.loads, done.stdout.splitlines())]


# every command, in this order (one after the other: extracts of one table do not overlap)
COMMANDS: list[tuple[str, ...]] = [
    ("validate", "--format", "json"),  # the unreachable source and the missing table are errors
    ("--debug", "validate", "-v", "--with-warehouse", "pg", *GOOD),
    ("bootstrap", "pgsrc", "--dry-run", "--format", "json"),
    ("bootstrap", "down", "-v"),  # unreachable
    ("run", "-v", *GOOD),
    ("run", "-e", "pg", "--format", "json", *GOOD),
    ("--debug", "run"),  # everything: the unreachable source and the missing table fail
    ("run", "-e", "gone", "--format", "json", "shop.*"),  # an unreachable warehouse, a whole-URL DSN
    ("--debug", "extract", "tables", "-v", "pgbad.missing"),
    ("extract", "tables", "--format", "json", "down.*"),
    ("extract", "tables", "shop.*", "pgsrc.items"),
    ("extract", "status", "--format", "json"),
    ("load", "-e", "pg", "-v", *GOOD),
    ("--debug", "load", "-e", "gone", "shop.*"),
    ("update", "-e", "dev", "--format", "json", "shop.customers"),
    ("upgrade", "-e", "pg", "-v", "mart.top_customers"),
    ("unload", "-e", "pg", "--format", "json", "mart.*"),
    ("unload", "-e", "gone", "mart.*"),
    ("show", "ddl", "-e", "pg", *GOOD),
    ("ls", "-v", "--format", "json"),
    ("runs", "--format", "json", "-n", "100"),
    ("runs", "show", "last", "-v"),
    ("runs", "show", "last", "--format", "json"),
    ("--debug", "runs", "show", "no-such-run"),
    ("pipeline", "show", "nightly"),
    ("pipeline", "show", "broken", "--format", "json"),
    ("pipeline", "run", "nightly"),
    ("pipeline", "run", "nightly", "-v"),
    ("--debug", "pipeline", "run", "broken"),
    ("pipeline", "run", "broken", "--format", "json"),
    ("pipeline", "run", "nightly", "--format", "json"),
    ("pipeline", "install", "nightly"),
    ("pipeline", "list", "--format", "json"),
    ("pipeline", "pause", "nightly"),
    ("pipeline", "resume", "nightly"),
    ("pipeline", "remove", "nightly"),
]


def run_scheduler(root: Path, env: dict[str, str], hooks: Hooks) -> Ran:
    """The scheduler, its clock at 02:45: yesterday's 02:30 was missed (alerted from the scheduler's
    own process), today's is within grace (runs as a child); stopped once that run pinged."""
    clock = {**env, "CONVEYOR_CLOCK": "2026-06-13T12:00:00+00:00"}
    [installed] = run_all(root, clock, [("pipeline", "install", "scheduled")])
    assert installed.code == 0, installed.out
    log = root / "scheduler.log"
    full = cli_env({**env, "CONVEYOR_CLOCK": "2026-06-15T02:45:00+00:00"})
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "-p", str(root), "scheduler", "--poll", "0.2"],
            env=full, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    ping = f"/ping/{canary('hc')}"
    before = {path: hooks.paths().count(path) for path in (ping, f"{ping}/fail")}

    def pinged() -> bool:  # the missed slot's /fail (from the scheduler) and the run's success ping
        return all(hooks.paths().count(path) > count for path, count in before.items())

    try:
        deadline = time.monotonic() + 90
        while not pinged() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert pinged() and process.returncode == 0, (hooks.paths(), log.read_text())
    return Ran(("scheduler",), process.returncode, log.read_text(errors="replace"))


# -- scanning ----------------------------------------------------------------------------------


def file_texts(root: Path) -> Iterator[tuple[str, str]]:
    """Every file under ``root`` as text (bytes decoded leniently), and the values inside
    Parquet, SQLite and DuckDB files read through their readers (their pages may be compressed)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".env"):  # .env: the input
        data = path.read_bytes()
        yield str(path), data.decode("latin-1")
        if data[:4] == b"PAR1":
            yield f"{path} (values)", parquet_text(path)
        elif data[:16] == b"SQLite format 3\x00":
            yield f"{path} (rows)", sqlite_text(path)
        elif path.suffix == ".duckdb":
            yield f"{path} (rows, comments)", duckdb_text(path)


def parquet_text(path: Path) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = {
        k.decode(errors="replace"): v.decode(errors="replace") for k, v in (table.schema.metadata or {}).items()
    }
    return repr(metadata) + repr(table.schema) + repr(table.to_pylist())


def sqlite_text(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "".join(repr(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    finally:
        con.close()


def duckdb_text(path: Path) -> str:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        parts = [
            repr(con.execute(query).fetchall())
            for query in (
                "SELECT * FROM duckdb_tables()",
                "SELECT * FROM duckdb_columns()",
                "SELECT * FROM duckdb_views() WHERE NOT internal",
                "SELECT * FROM duckdb_schemas()",
            )
        ]
        names = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal").fetchall()
        parts += [repr(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()) for s, t in names]
        return "".join(parts)
    finally:
        con.close()


def postgres_text(dsn: str) -> str:
    """Every comment and every row of every user table in a PostgreSQL database."""
    with psycopg.connect(dsn, autocommit=True) as con:
        comments = con.execute("SELECT description FROM pg_description").fetchall()
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN "
            "('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        ).fetchall()
        views = con.execute(
            "SELECT definition FROM pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        rows = [con.execute(f'SELECT * FROM "{s}"."{t}"'.encode()).fetchall() for s, t in tables]
        return repr(comments) + repr(views.fetchall()) + repr(rows)


def hits(text: str) -> list[str]:
    """The lines of ``text`` with the canary's marker in them."""
    return [line.strip()[:300] for line in text.splitlines() if MARK in line]


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_no_secret_appears_in_any_output_or_file(
    tmp_path: Path, new_project: Callable[..., Path], postgres: Postgres, hooks: Hooks
) -> None:
    root = tmp_path / "project"
    env = make_canary_project(new_project, root, postgres, hooks.port)

    began = time.monotonic()
    ran = run_all(root, env, COMMANDS)
    ran.append(run_scheduler(root, env, hooks))
    codes = {" ".join(r.args): r.code for r in ran}
    outputs = {" ".join(r.args): r.out for r in ran}
    print(f"{len(ran)} commands in {time.monotonic() - began:.1f} s")
    # the commands did what they were meant to: successes and failures both happened
    for command, code in [
        ("run -v " + " ".join(GOOD), 0),
        ("run -e pg --format json " + " ".join(GOOD), 0),
        ("--debug run", 1),
        ("run -e gone --format json shop.*", 1),
        ("pipeline run nightly -v", 0),
        ("--debug pipeline run broken", 1),
    ]:
        assert codes[command] == code, (command, outputs[command])
    assert any(p.startswith("/broken/") for p in hooks.paths())  # the endpoint that answered 500
    assert len(ran) == len(COMMANDS) + 1

    found: dict[str, list[str]] = {}
    for r in ran:
        found[f"output of conveyor {' '.join(r.args)}"] = hits(r.out)
    for path, body in hooks.received:
        found[f"body POSTed to {path.replace(MARK, '<marker>')}"] = hits(body.decode(errors="replace"))
    for name, text in file_texts(root):
        found[name] = hits(text)
    found["PostgreSQL warehouse"] = hits(postgres_text(postgres.dsn(postgres.warehouse_db)))
    pages = dashboard_texts(root, env)
    assert len(pages) > 20 and any(path.startswith("/runs/") for path in pages), list(pages)  # it crawled
    for path, text in pages.items():
        found[f"dashboard page {path}"] = hits(text)
    leaks = {where: lines for where, lines in found.items() if lines}
    assert not leaks, leaks


def dashboard_texts(root: Path, env: dict[str, str], limit: int = 300) -> dict[str, str]:
    """Every page of ``conveyor ui`` over the project, crawled from ``/`` by its own links, with
    the JSON behind them: each body and its headers."""
    import html
    import re
    from urllib.parse import quote

    import httpx
    from web.dashboard import start_ui, stop

    process, url, _lines = start_ui(root, env)
    try:
        queue = ["/", "/api/runs?limit=500", "/api/pipelines", "/api/relations?q=", "/pipelines", "/extracts"]
        seen: dict[str, str] = {}
        while queue and len(seen) < limit:
            path = queue.pop(0)
            if path in seen:
                continue
            response = httpx.get(url + path, timeout=30)
            seen[path] = response.text + "\n" + "\n".join(response.headers.values())
            for link in re.findall(r'href="(/[^"#]*)"', response.text):
                link = html.unescape(link)
                if not link.startswith("/static/") and link not in seen:
                    queue.append(link)
            if path.startswith(("/runs/", "/relations/", "/extracts/")):  # the JSON of the same page
                queue.append("/api" + path)
            if path.startswith("/relations/"):
                queue.append(f"/api/lineage?focus={quote(path.removeprefix('/relations/'), safe='')}&up=5&down=5")
        return seen
    finally:
        stop(process)
