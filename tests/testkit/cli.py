"""Running the ``conveyor`` command in tests: in a subprocess (the real console script) or in this
process (fast; output captured by pytest), with one result type for both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the console script of the environment running the tests
CONVEYOR = str(Path(sys.executable).parent / "conveyor")


@dataclass
class CliResult:
    """What a ``conveyor`` command line did."""

    code: int
    stdout: str
    stderr: str
    argv: Sequence[str] = field(default_factory=tuple)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command under test: wide, plain output; no project from the caller's shell."""
    full = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
    full.pop("CONVEYOR_PROJECT", None)
    return full


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> CliResult:
    """Run the ``conveyor`` console script in a subprocess."""
    done = subprocess.run(
        [CONVEYOR, *args], cwd=cwd, env=cli_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliResult(done.returncode, done.stdout, done.stderr, args)
