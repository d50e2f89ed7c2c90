"""Fixtures for the validate tests: the broken-project corpus and a way to run the command.

Every case under ``tests/cases/<name>/`` is the shared base project (``tests/cases/_base``)
with the case's files laid over it. ``expected.yaml`` beside them says what validation must
report: exactly one problem (code, severity, file, line, maybe column and a message part).
It may also give ``selection`` (terms to validate), ``warehouse`` (an environment for
--with-warehouse), ``delete`` (base files to remove) and ``needs_missing`` (a module that
must not be importable, or the case is skipped).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from testkit.cli import CliResult

CASES = Path(__file__).resolve().parents[1] / "cases"
BASE = CASES / "_base"

#: runs main() with this package's validate command registered (whatever main.py registers)
SHIM = (
    "import sys\n"
    "from conveyor.cli.main import cli, main\n"
    "from conveyor.cli.validate_cmd import validate\n"
    "cli.add_command(validate)\n"
    "main(sys.argv[1:])\n"
)


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir() and not p.name.startswith("_"))


def spec_of(name: str) -> dict[str, Any]:
    return yaml.safe_load((CASES / name / "expected.yaml").read_text(encoding="utf-8"))


def build_upstream(path: Path) -> None:
    """The base project's SQLite upstream database, from upstream.sql."""
    con = sqlite3.connect(path)
    try:
        con.executescript((BASE / "upstream.sql").read_text(encoding="utf-8"))
        con.commit()
    finally:
        con.close()


@pytest.fixture(scope="session")
def upstream_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upstream") / "upstream.db"
    build_upstream(path)
    return path


@pytest.fixture
def case_project(tmp_path: Path, upstream_db: Path) -> Callable[[str], Path]:
    """``case_project(name)``: the base project with case ``name`` laid over it, in a fresh folder."""

    def make(name: str) -> Path:
        root = tmp_path / name
        shutil.copytree(BASE, root, ignore=shutil.ignore_patterns("upstream.sql"))
        shutil.copy(upstream_db, root / "upstream.db")
        if name != "_base":
            folder = CASES / name
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.name != "expected.yaml":
                    target = root / path.relative_to(folder)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, target)
            for relative in spec_of(name).get("delete") or []:
                (root / relative).unlink()
        return root

    return make


def run_validate(root: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """``conveyor -p ROOT validate ARGS`` in a subprocess (through ``conveyor.cli.main.main``)."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
    full_env.pop("CONVEYOR_PROJECT", None)
    done = subprocess.run(
        [sys.executable, "-c", SHIM, "-p", str(root), "validate", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def validate_cli() -> Callable[..., CliResult]:
    """``validate_cli(root, *args)`` runs ``conveyor validate`` in a subprocess."""
    return run_validate
