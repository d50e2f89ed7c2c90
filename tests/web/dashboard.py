"""The dashboard under test: the real ``conveyor ui`` server (a subprocess, on a free loopback
port) over the test project's tracking store, filled by real runs (one succeeded with a warned
data test, one failed), one run with hostile names and planted secrets, and 10,000 generated
runs. Shared by the fixtures (conftest.py), the tests and tests/web/screenshots.py."""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from testkit.cli import CONVEYOR, CliResult, cli_env
from testkit.history import History, generate_runs

from tests.conftest import CONVEYOR_YAML

TOKEN = "t0ken-" + secrets.token_hex(12)
MARK = "kanari" + secrets.token_hex(5)  # every planted secret starts with it; nothing else does
HOSTILE = "<script>window.__pwned = 1</script>"
HOSTILE_ERROR = '<img src=x onerror="window.__pwned = 1"> failed'

# a warn test that fails on real rows: the run publishes and records the failing rows
TOTALS_WITH_TEST = """\
name: mart.customer_totals
kind: ctas
description: Order totals per customer
constraints:
  primary_key: [customer_id]
tests:
  - expression: {sql: "total > 100", severity: warn, name: big spenders only}
"""
# binds (validate passes it) but fails as it runs: a name is no number
BROKEN_TOP = """\
SELECT customer_id, name, total, CAST(name AS INTEGER) AS name_number
FROM customer_totals
WHERE total > 0
"""
# an extra source nobody extracts: its DSN's password (a canary) is resolved by `conveyor ui`
CANARY_SOURCE = """
  vault:
    type: postgres
    dsn: postgresql://reader:${UI_CANARY_PASSWORD}@127.0.0.1:1/vault
"""
PIPELINE = """\
pipelines:
  nightly:
    schedule: nightly at 02:30 UTC
    steps: full
    environments: {primary: dev}
"""


@dataclass
class Server:
    """A running ``conveyor ui``: its base URL, project folder, process and what its store holds."""

    url: str
    root: Path
    process: subprocess.Popen[str]
    history: History
    ok_run: str
    failed_run: str
    hostile_run: str
    canaries: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)


def start_ui(root: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``conveyor ui --port 0`` in ``root``; returns the process, its URL (from what it prints) and its output."""
    process = subprocess.Popen(
        [CONVEYOR, "ui", "--port", "0", *args], cwd=root, env=cli_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"http://\S+/", "".join(lines))
        if found:
            return process, found.group(0).rstrip("/"), lines
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"conveyor ui did not start: {''.join(lines)}")


def stop(process: subprocess.Popen[str]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def fill_store(root: Path, cli: Callable[..., CliResult]) -> tuple[History, str, str, str, list[str]]:
    """Real runs (succeeded, failed), a run with hostile names and planted secrets, 10,000 generated runs."""
    from conveyor.tracking.store import TrackingStore, default_dsn

    installed = cli("pipeline", "install", "nightly", cwd=root)
    assert installed.code == 0, installed.output
    ok = cli("run", "-q", cwd=root)
    assert ok.code == 0, ok.output
    top = root / "schemas/mart/top_customers.sql"
    good_sql = top.read_text()
    top.write_text(BROKEN_TOP)
    failed = cli("run", "-q", cwd=root)
    assert failed.code == 1, failed.output
    top.write_text(good_sql)

    canaries = [f"{MARK}password", f"{MARK}url"]
    store = TrackingStore.open(default_dsn(root))
    try:
        ok_run, failed_run = (r.run_id for r in store.list_runs(limit=2)[::-1])
        hostile = store.start_run("run", project="testproj", pipeline="<b>nightly</b>", selection=HOSTILE)
        now = datetime.now(UTC)
        store.record_event(
            hostile, HOSTILE, "build", "failed", started_at=now, finished_at=now + timedelta(seconds=1),
            error=f"{HOSTILE_ERROR}; the login used {canaries[0]}", environment="<i>dev</i>",
        )  # fmt: skip
        store.finish_run(
            hostile, "failed", error=f"cannot reach postgresql://etl:{canaries[1]}@db.internal/warehouse; {HOSTILE}"
        )
    finally:
        store.close()
    history = generate_runs(root / ".conveyor" / "tracking.db", 10_000, newest=datetime.now(UTC) - timedelta(days=1))
    return history, ok_run, failed_run, hostile, canaries


def settings() -> str:
    """conveyor.yaml of the dashboard's project: the test project's, a canary source, a pipeline."""
    return CONVEYOR_YAML.replace("sources:\n", "sources:" + CANARY_SOURCE, 1) + PIPELINE


def start_server(base: Path, new_project: Callable[..., Path], cli: Callable[..., CliResult]) -> Server:
    """Build the project in ``base/project``, fill its store, start ``conveyor ui`` with actions on."""
    root = new_project(base / "project", settings=settings(), designs={"mart/customer_totals.yaml": TOTALS_WITH_TEST})
    history, ok_run, failed_run, hostile, canaries = fill_store(root, cli)
    env = {"CONVEYOR_UI_TOKEN": TOKEN, "UI_CANARY_PASSWORD": canaries[0]}
    process, url, lines = start_ui(root, env)
    return Server(url, root, process, history, ok_run, failed_run, hostile, canaries, lines)
