"""Run a pipeline now, from the dashboard (the pipelines page's "Run now").

The run must outlive the request, and a long run must not hold a server thread: the server
starts it as its own process, as ``conveyor pipeline run NAME`` would run (the project's
files, the pipeline's locks, its notifications), under a run id chosen here so that the page
can link to it at once::

    python -m conveyor.web.trigger PROJECT_DIR NAME RUN_ID

The process is detached from the server (its own session: stopping the server does not
stop the run) and writes what it prints to ``.conveyor/ui-runs/RUN_ID.log`` in the project.
A pipeline whose locks are taken (a run of it is in progress) records nothing and exits 2 at
once: the server sees that and answers with the message instead of a run id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from conveyor.config.secrets import scrub
from conveyor.project import Project
from conveyor.web.security import TOKEN_VARIABLE

LOG_DIR = Path(".conveyor") / "ui-runs"
STARTED_WAIT_S = 15.0
"""How long the server waits for the run to be recorded (or refused) before answering."""


@dataclass
class Started:
    """A run the dashboard started: its id and process, and where its output goes."""

    run_id: str
    process: subprocess.Popen[bytes]
    log: Path

    def refusal(self) -> str | None:
        """Why the run did not start (its process ended without recording it: a busy lock, say),
        scrubbed of secrets; None while it runs or once it ended on its own."""
        code = self.process.poll()
        if code is None or code == 0:
            return None
        lines = [line.strip() for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return scrub(" ".join(lines[-3:])) if lines else f"the run's process ended with exit code {code}."


def start(project: Project, name: str) -> Started:
    """Start pipeline ``name`` of ``project`` in a process of its own; returns at once.

    Raises:
        UserError: the project defines no such pipeline.
    """
    from conveyor.pipeline.definitions import get_pipeline
    from conveyor.tracking.store import new_run_id

    get_pipeline(project, name)  # an unknown pipeline is the request's error, not a process that fails
    run_id = new_run_id()
    log = project.root / LOG_DIR / f"{run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.web.trigger", str(project.root), name, run_id],
            cwd=project.root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            # the run (its setup commands, its Spark jobs) has no business with the dashboard's token
            env={k: v for k, v in os.environ.items() if k != TOKEN_VARIABLE},
        )  # fmt: skip
    threading.Thread(target=process.wait, name=f"run {run_id}", daemon=True).start()  # no zombie left behind
    return Started(run_id, process, log)


def wait_started(started: Started, recorded: object, timeout_s: float = STARTED_WAIT_S) -> str | None:
    """Wait until the run is recorded (``recorded()`` is true) or refused; returns the refusal, or None."""
    assert callable(recorded)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if recorded():
            return None
        refusal = started.refusal()
        if refusal is not None:
            return refusal
        if started.process.poll() == 0:
            return None
        time.sleep(0.1)
    return None  # still starting (a slow project load): the run page will show it once it is recorded


def main(argv: list[str]) -> int:
    """Run the pipeline (the process :func:`start` starts); exit code 0 on success, 1 on a failed
    run, 2 when it could not start."""
    from conveyor import api
    from conveyor.errors import ConveyorError

    root, name, run_id = argv
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        project, problems = api.open_project_for_run(root)
        outcome = api.run_pipeline(project, name, run_id=run_id, stop=stop, problems=problems)
    except ConveyorError as exc:
        print(scrub(f"Error: {exc.message}" + (f" {exc.hint}" if exc.hint else "")), flush=True)
        return 2
    print(f"Pipeline {name} run {run_id} {outcome.status} in {outcome.seconds:.1f} s", flush=True)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
