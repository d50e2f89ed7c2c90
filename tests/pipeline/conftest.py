"""Fixtures for pipeline and scheduler tests: real servers, real processes, one real store.

- ``hooks``: an HTTP server on 127.0.0.1 that records every POST (dead-man pings and the JSON
  webhooks apprise sends for ``json://`` URLs).
- ``mailbox``: an SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message.
- ``pipeline_project``: the shared test project plus a second DuckDB environment ``dev2``
  and the pipelines a test writes (``pipelines/<name>.yaml``).
- ``SchedulerProcess``: ``conveyor scheduler --poll 0.2`` as a real subprocess, optionally
  with the documented clock hook ``CONVEYOR_CLOCK``.
- ``conveyor(...)``: the CLI in this process (the same ``main`` as the console script, only
  without paying the import time again); ``cli(...)`` from the top conftest runs it as a
  subprocess where the process boundary matters.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from testkit.cli import CliResult as Result

from conveyor.tracking.store import TrackingStore

SECOND_ENVIRONMENT = "  dev2:\n    type: duckdb\n    dsn: warehouse2.duckdb\n"
# a setup command that blocks until the test creates the file "go" in the project folder
WAIT_FOR_GO = "while [ ! -f go ]; do sleep 0.05; done"


# -- waiting ---------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], Any], timeout: float = 45.0, what: str = "condition", interval: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- the HTTP recorder -----------------------------------------------------------------------


@dataclass
class Request:
    path: str
    content_type: str
    body: bytes
    at: float

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Hooks:
    """Every POST the server received, in order; ``status`` maps paths to forced responses."""

    port: int
    requests: list[Request] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def received(self, prefix: str = "") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def paths(self, prefix: str = "") -> list[str]:
        return [r.path for r in self.received(prefix)]

    def wait(self, path: str, count: int = 1, timeout: float = 45.0) -> list[Request]:
        """Wait until ``path`` was posted ``count`` times; return those requests."""
        return wait_for(
            lambda: (found := [r for r in self.received() if r.path == path]) and len(found) >= count and found,
            timeout,
            f"{count} POST(s) to {path} (got {self.paths()})",
        )


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """A recording HTTP server on 127.0.0.1."""
    state = Hooks(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            with state.lock:
                state.requests.append(Request(self.path, self.headers.get("content-type", ""), body, time.time()))
                code = state.status.get(self.path, 200)
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# -- the SMTP server -------------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    def url(self, to: str = "ops@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=etl@example.com&to={to}&mode=insecure"

    def wait(self, count: int = 1, timeout: float = 45.0) -> list[email.message.EmailMessage]:
        return wait_for(lambda: len(self.messages) >= count and list(self.messages), timeout, f"{count} e-mail(s)")


def body_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return " ".join(part.get_content().split())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 that keeps every message it gets."""
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            box.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def write_pipeline(root: Path, name: str, text: str) -> Path:
    path = root / "pipelines" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# -- projects --------------------------------------------------------------------------------


@pytest.fixture
def pipeline_project(make_project: Callable[..., Path]) -> Callable[..., Path]:
    """``pipeline_project({"nightly": "schedule: ..."}, designs=...)``: a project with dev and dev2."""

    def factory(pipelines: dict[str, str] | None = None, **kwargs: Any) -> Path:
        root = make_project(**kwargs)
        settings = root / "conveyor.yaml"
        settings.write_text(settings.read_text().replace("defaults:", SECOND_ENVIRONMENT + "defaults:"))
        for name, text in (pipelines or {}).items():
            write_pipeline(root, name, text)
        return root

    return factory


def open_store(root: Path) -> TrackingStore:
    return TrackingStore.open(f"sqlite:///{root / '.conveyor' / 'tracking.db'}")


@pytest.fixture
def store_of() -> Iterator[Callable[[Path], TrackingStore]]:
    """``store_of(root)``: the project's tracking store, closed after the test."""
    opened: list[TrackingStore] = []

    def factory(root: Path) -> TrackingStore:
        store = open_store(root)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


# -- the CLI in this process -----------------------------------------------------------------


@contextlib.contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def conveyor(root: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    """``conveyor -p ROOT ARGS...`` through the console script's ``main``, in this process."""
    from conveyor.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with (
        environment({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(["-p", str(root), *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


# -- the scheduler as a real process ---------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class SchedulerProcess:
    """``python -m conveyor -p ROOT scheduler --poll 0.2`` with its output in a log file."""

    def __init__(
        self, root: Path, *, clock: datetime | None = None, env: dict[str, str] | None = None, poll: float = 0.2
    ):
        self.root = root
        self.clock = clock
        self.log = root / f"scheduler-{time.monotonic_ns()}.log"
        full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
        full_env.pop("CONVEYOR_PROJECT", None)
        full_env.pop("CONVEYOR_CLOCK", None)
        if clock is not None:
            full_env["CONVEYOR_CLOCK"] = iso(clock)
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "-p", str(root), "scheduler", "--poll", str(poll)],
                cwd=root,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, like a service
            )
        self.started = time.time()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def holds_lock(self, store: TrackingStore) -> bool:
        holder = store.lock_holder("scheduler")
        if self.process.poll() is not None:
            pytest.fail(f"the scheduler ended with {self.process.returncode}:\n{self.output()}")
        return holder is not None and holder.pid == self.pid

    def wait_started(self, store: TrackingStore, timeout: float = 45.0) -> None:
        wait_for(lambda: self.holds_lock(store), timeout, "the scheduler to take its lock")

    def wait_clock_past(self, store: TrackingStore, instant: datetime, timeout: float = 45.0) -> None:
        """Wait until this scheduler has ticked with its clock past ``instant``.

        The clock starts at ``self.clock`` before the scheduler takes its lock, and every tick
        refreshes the lock before it looks at the schedules; so once the heartbeat is
        ``instant - clock`` later than the lock was taken, a tick has seen ``instant``.
        """
        assert self.clock is not None
        needed = (instant - self.clock).total_seconds()

        def ticked() -> bool:
            holder = store.lock_holder("scheduler")
            if self.process.poll() is not None:
                pytest.fail(f"the scheduler ended with {self.process.returncode}:\n{self.output()}")
            return (
                holder is not None
                and holder.pid == self.pid
                and (holder.heartbeat_at - holder.acquired_at).total_seconds() > needed
            )

        wait_for(ticked, timeout, f"the scheduler's clock to pass {iso(instant)}")

    def wait_heartbeats(self, store: TrackingStore, seconds: float, timeout: float = 45.0) -> None:
        """Wait until this scheduler has refreshed its lock ``seconds`` after now (it polled meanwhile)."""
        since = datetime.now(UTC)

        def beat() -> bool:
            holder = store.lock_holder("scheduler")
            if self.process.poll() is not None:
                pytest.fail(f"the scheduler ended with {self.process.returncode}:\n{self.output()}")
            return holder is not None and (holder.heartbeat_at - since).total_seconds() > seconds

        wait_for(beat, timeout, f"the scheduler's heartbeat {seconds} s from now")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the scheduler only (a child it started lives on, as after a crash)."""
        self.process.kill()
        self.process.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the scheduler's whole process group (its children too), like a power cut."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the scheduler did not end within {timeout:.0f} s:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()


@pytest.fixture
def schedulers() -> Iterator[Callable[..., SchedulerProcess]]:
    """``schedulers(root, clock=...)`` starts a scheduler; leftovers are killed after the test."""
    started: list[SchedulerProcess] = []

    def start(root: Path, **kwargs: Any) -> SchedulerProcess:
        process = SchedulerProcess(root, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.process.wait(10)
    for root in {process.root for process in started}:
        kill_runs(root)


def kill_runs(root: Path) -> None:
    """Kill run processes a killed scheduler left behind (only those of this project's slots)."""
    (root / "go").touch()  # releases setups that wait for it
    store = open_store(root)
    try:
        slots = [s for s in store.iter_all_slots() if s.status == "running" and s.detail and s.detail.get("pid")]
    finally:
        store.close()
    for slot in slots:
        pid = int(slot.detail["pid"])  # type: ignore[index]
        with contextlib.suppress(OSError):
            if str(slot.run_id) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                os.killpg(pid, signal.SIGKILL)


def add_environments(root: Path, *names: str) -> None:
    """More DuckDB environments in the project's conveyor.yaml (``NAME.duckdb`` each)."""
    text = "".join(f"  {name}:\n    type: duckdb\n    dsn: {name}.duckdb\n" for name in names)
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text().replace("defaults:", text + "defaults:"))


def run_events(store: TrackingStore, run_id: str, step: str) -> list[Any]:
    return [e for e in store.run_events(run_id) if e.step == step]


def runs_of(root: Path, pipeline: str) -> list[dict[str, Any]]:
    """``conveyor runs --pipeline NAME --format json``."""
    result = conveyor(root, "runs", "--pipeline", pipeline, "--format", "json")
    assert result.code == 0, result.output
    return list(result.json())


def install(root: Path, name: str, clock: str | None = None) -> None:
    """``conveyor pipeline install NAME``, with the scheduler's clock hook when ``clock`` is given."""
    result = conveyor(root, "pipeline", "install", name, env={"CONVEYOR_CLOCK": clock})
    assert result.code == 0, result.output
