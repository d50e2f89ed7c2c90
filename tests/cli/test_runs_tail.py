"""conveyor runs tail follows a run until it ends."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONVEYOR = str(Path(sys.executable).parent / "conveyor")  # the console script beside this interpreter


def test_tail_follows_a_running_run_to_its_end(project_dir: Path, cli: Callable[..., Any]) -> None:
    run = subprocess.Popen([CONVEYOR, "-q", "run"], cwd=project_dir)
    try:
        deadline = time.monotonic() + 30
        while not (project_dir / ".conveyor" / "tracking.db").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        result = cli("runs", "tail", "--interval", "0.1", "--format", "json", cwd=project_dir)
    finally:
        run.wait(timeout=60)
    assert result.code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    final = lines[-1]
    assert final["status"] == "succeeded"
    events = lines[:-1]
    # every (relation, step) of the run appears, ending with the publish
    finished = {(e["relation"], e["step"]) for e in events if e["status"] == "succeeded"}
    assert ("*", "publish") in finished and ("mart.report", "build") in finished
    assert {e["run_id"] for e in events} == {final["run_id"]}


def test_tail_of_a_finished_run_prints_it_and_returns(project_dir: Path, cli: Callable[..., Any]) -> None:
    assert cli("-q", "run", cwd=project_dir).code == 0
    result = cli("runs", "tail", cwd=project_dir)
    assert result.code == 0
    assert "publish *" in result.stdout and "succeeded in" in result.stdout
