"""Start-up stays cheap: ``--help`` imports no command, ``ls`` and ``runs`` no data library.

Time is measured by ``bench/startup`` (never by a test); these tests pin the cause instead:
which modules a fresh interpreter has imported after the command.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import conveyor
from conveyor.cli.main import cli

#: libraries that cost tens to hundreds of milliseconds each and that listing never needs
HEAVY = ("pyarrow", "numpy", "duckdb", "apprise", "httpx", "psycopg", "adbc_driver_manager", "pymysql", "connectorx")

PROBE = """
import json, sys
sys.argv = ["conveyor", *json.loads(sys.argv[1])]
from conveyor.cli.main import main
try:
    main()
except SystemExit:
    pass
print("\\n" + json.dumps(sorted(m for m in sys.modules if "." not in m)), file=sys.stderr)
"""


def imported_after(args: list[str], cwd: Path) -> set[str]:
    """The top-level modules a fresh ``conveyor ARGS`` has imported when it exits."""
    env = {**os.environ, "PYTHONPATH": str(Path(conveyor.__file__).parents[1])}  # this checkout's code
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_summaries_are_the_commands_own() -> None:
    for name, lazy in cli.lazy.items():
        module, _, attribute = lazy.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
        assert lazy.summary == first_paragraph, f"update the summary of {name!r} in conveyor/cli/main.py"


def test_help_imports_no_command(tmp_path: Path) -> None:
    modules = imported_after(["--help"], tmp_path)
    assert "conveyor" in modules
    assert modules & {*HEAVY, "sqlglot", "pydantic"} == set()


@pytest.mark.parametrize("args", [["ls"], ["runs"], ["ls", "--format", "json"]])
def test_listing_imports_no_data_library(project_dir: Path, args: list[str]) -> None:
    assert imported_after(args, project_dir) & set(HEAVY) == set()
