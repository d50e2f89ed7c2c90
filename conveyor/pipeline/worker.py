"""The process the scheduler starts for one scheduled run: ``python -m conveyor.pipeline.worker``.

It runs one pipeline once, for one slot, under the run id the scheduler claimed, with the
definition installed in the tracking store (the one whose schedule the scheduler follows:
an edited file takes effect at ``conveyor pipeline install``), and exits
0 when the run succeeded, 1 when it failed or was cancelled, 2 on bad input. SIGTERM (the
scheduler passes a Ctrl-C or its own stop on) lets the current step finish, then stops. It
is internal: people run a pipeline with ``conveyor pipeline run NAME``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime

from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError
from conveyor.pipeline.definitions import NOT_INSTALLED, drift_note, installed_pipeline, open_for_run
from conveyor.pipeline.runner import run_pipeline
from conveyor.reporting import Reporter


class _Messages(Reporter):
    """Messages (such as what a scheduled run waits for) go to standard error: the scheduler's log."""

    def message(self, text: str, level: str = "info") -> None:
        print(scrub(text), file=sys.stderr, flush=True)


def argv(project_dir: str, name: str, run_id: str, slot: datetime) -> list[str]:
    """The command line that runs ``name`` for ``slot`` as run ``run_id`` (after the interpreter)."""
    return [
        "-m",
        "conveyor.pipeline.worker",
        "--project",
        project_dir,
        "--run-id",
        run_id,
        "--slot",
        slot.isoformat(),
        name,
    ]


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor.pipeline.worker", description=__doc__)
    parser.add_argument("--project", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--slot", required=True, type=datetime.fromisoformat)
    parser.add_argument("name")
    given = parser.parse_args(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        project, problems = open_for_run(given.project)
        definition, state = installed_pipeline(project, given.name)
        note = drift_note(given.name, state) if state != NOT_INSTALLED else None
        if note:
            print(scrub(note), file=sys.stderr, flush=True)
        outcome = run_pipeline(
            project,
            definition,
            run_id=given.run_id,
            scheduled_for=given.slot,
            reporter=_Messages(),
            stop=stop,
            problems=problems,
        )
    except ConveyorError as exc:
        print("Error: " + scrub(exc.render()), file=sys.stderr)
        return exc.exit_code
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
