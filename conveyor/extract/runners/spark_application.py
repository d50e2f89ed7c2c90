"""One Spark application serving every ``spark`` table of an extract run.

Starting a Spark application costs a JVM and a SparkSession: seconds on an idle machine,
far more than a small table's read. So an extract run starts the application once per
distinct Spark settings (master, submit command, jars, conf) and sends it one request per
table through a queue folder (see :mod:`conveyor.extract.spark_app` for the other side):

* :meth:`SparkApplication.run` drops ``<id>.request.json`` (written whole: a temporary name,
  then a rename), then waits for ``<id>.result.json``. The table's worker thread waits, so
  Conveyor's ``--jobs`` is how many tables Spark runs at a time.
* A table that times out, or a run that is cancelled, drops ``<id>.cancel``: the
  application cancels that table's Spark job group and the others go on.
* :meth:`SparkApplication.close` drops ``stop`` and waits for the program to end (it
  answers the requests in flight first); after a failure or a cancel, or when it does not
  end in time, the whole process group (the JVM with it) is killed.

The queue is a folder and not a pipe because ``spark-submit`` does not hand its standard
input to a Python driver, and a folder in the lake is what a driver elsewhere (cluster
deploy mode) sees too: the lake must already be a filesystem Spark's executors write to.
The application's own output is read on a thread (the last lines kept for error messages),
so a chatty JVM never blocks on a full pipe.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from conveyor import cancel
from conveyor.config.secrets import scrub
from conveyor.errors import ExtractError

REQUEST_SUFFIX = ".request.json"
RESULT_SUFFIX = ".result.json"
CANCEL_SUFFIX = ".cancel"
READY = "ready.json"
STOP = "stop"
ERROR = "CONVEYOR_SPARK_ERROR"

#: how often a waiting table looks for its result (a stat call; Spark jobs take far longer)
POLL_S = 0.05
#: how long a stopping application may take to answer what is in flight and exit
STOP_GRACE_S = 60.0


class SparkApplication:
    """A running ``spark_app`` process and its queue folder."""

    def __init__(
        self,
        argv: list[str],
        app: dict[str, Any],
        queue: Path,
        dsns: dict[str, str],
        cwd: Path,
        *,
        local: bool,
    ):
        self.argv = argv
        self.queue = queue
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._tail: collections.deque[str] = collections.deque(maxlen=200)
        self._error_line: dict[str, Any] | None = None
        queue.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "CONVEYOR_SPARK_APP": json.dumps(app, sort_keys=True),
            "CONVEYOR_SPARK_QUEUE": str(queue.resolve()),
            "CONVEYOR_SOURCE_DSNS": json.dumps(dsns),
            "CONVEYOR_PARENT_PID": str(os.getpid()),
            "CONVEYOR_PARENT_HOST": socket.gethostname(),
        }
        if local:
            env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        try:
            # its own process group: a kill ends the JVM too, not only Python
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except FileNotFoundError:
            raise ExtractError(f"the Spark submit command was not found: {argv[0]}.") from None
        self._reader = threading.Thread(target=self._read_output, name="spark-app-output", daemon=True)
        self._reader.start()

    # -- the application's output

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(ERROR + " "):
                with contextlib.suppress(ValueError):
                    self._error_line = json.loads(line[len(ERROR) + 1 :])
            elif line.strip() and not line.lstrip().startswith("at "):  # no Java stack frames
                self._tail.append(line)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self, relation: str) -> ExtractError:
        """Why the application ended before answering ``relation``'s request."""
        self._reader.join(timeout=5)  # the last lines it printed
        if self._error_line is not None:
            message = scrub(str(self._error_line.get("message") or "unknown error"))
            what = "failed" if (self.queue / READY).exists() else "did not start"
            return ExtractError(f'the Spark job of "{relation}" failed: the Spark application {what}: {message}')
        tail = scrub("\n".join(list(self._tail)[-8:]))
        code = self.proc.returncode
        return ExtractError(f'the Spark job of "{relation}" failed: the Spark application exited with {code}: {tail}')

    # -- one table

    def run(self, relation: str, source: str, plan: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        """Send one table's plan and wait for its answer: ``{"ok": True, ...}`` or ``{"ok": False, "error": ...}``."""
        with self._lock:
            ident = f"t{next(self._ids):05d}"
        request = {"id": ident, "relation": relation, "source": source, "plan": plan}
        _write_json(self.queue / f"{ident}{REQUEST_SUFFIX}", request)
        result_path = self.queue / f"{ident}{RESULT_SUFFIX}"
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while not result_path.exists():
                if not self.alive and not result_path.exists():
                    raise self.failure(relation)
                if cancel.requested():
                    raise cancel.Cancelled(f'the Spark job of "{relation}" was cancelled.')
                if deadline is not None and time.monotonic() > deadline:
                    raise ExtractError(f'the Spark job of "{relation}" timed out after {timeout_s:g} s.')
                time.sleep(POLL_S)
        except BaseException:
            # stop this table's Spark jobs; the application goes on with the others
            with contextlib.suppress(OSError):
                (self.queue / f"{ident}{CANCEL_SUFFIX}").touch()
            raise
        answer: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        return answer

    # -- the end

    def close(self, *, kill: bool = False, grace_s: float = STOP_GRACE_S) -> None:
        """Ask the application to stop (``kill``: end it at once) and remove the queue."""
        try:
            if self.alive and not kill:
                with contextlib.suppress(OSError):
                    (self.queue / STOP).touch()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=grace_s)
            # the whole group, even when the program ended: a JVM it did not wait for must not outlive the run
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self._reader.join(timeout=5)
        finally:
            shutil.rmtree(self.queue, ignore_errors=True)


class SparkApplications:
    """The Spark applications of one extract run: one per distinct settings, started on first use.

    Tables whose sources share the master, the submit command, the jars and the Spark
    settings share an application. One that ended after it started (a crash, a killed JVM)
    is replaced by a new one for the tables that come after; one that never started is not.
    """

    def __init__(self, scratch: Path, dsns: dict[str, str], root: Path):
        self.scratch = scratch
        self.dsns = dsns
        self.root = root
        self._apps: dict[str, SparkApplication] = {}
        self._lock = threading.Lock()
        self._count = itertools.count(1)

    def application(self, argv: list[str], app: dict[str, Any], *, local: bool) -> SparkApplication:
        """The running application of this command and these settings (``master``, ``jars``,
        ``conf``), started if there is none (or it ended)."""
        key = json.dumps([argv, app], sort_keys=True)
        with self._lock:
            found = self._apps.get(key)
            if found is not None and (found.alive or not (found.queue / READY).exists()):
                # running, or it never got its SparkSession (no Java, a bad submit command):
                # each table fails with that error instead of starting it again and again
                return found
            if found is not None:
                found.close(kill=True)
            named = {**app, "name": f"conveyor extract ({self.scratch.parent.name})"}
            queue = self.scratch / f"spark-{next(self._count)}"
            started = SparkApplication(argv, named, queue, self.dsns, self.root, local=local)
            self._apps[key] = started
            return started

    def close(self, *, kill: bool = False) -> None:
        """Stop every application (``kill``: at once, after a failure or a cancel)."""
        with self._lock:
            apps, self._apps = list(self._apps.values()), {}
        for app in apps:
            app.close(kill=kill)
        with contextlib.suppress(OSError):
            self.scratch.rmdir()


def _write_json(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(value, default=str), encoding="utf-8")
    os.replace(temporary, path)
