"""What a person sees in a terminal: progress bars that end where the summary says, a quiet mode
that still says how the run ended. The commands run under a real pseudo-terminal (``script``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from testkit.cli import CONVEYOR, cli_env, run_cli

pytestmark = pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux's script")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_terminal(root: Path, *args: str) -> str:
    """Run ``conveyor -p ROOT ARGS`` with a pseudo-terminal as its output; the text it drew."""
    command = " ".join([CONVEYOR, "-p", str(root), *args])
    env = cli_env({"COLUMNS": "100", "TERM": "xterm"})
    env.pop("NO_COLOR", None)
    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return ANSI.sub("", done.stdout.replace("\r", "\n"))


def last_bar(text: str, phase: str) -> str:
    bars = [line for line in text.splitlines() if line.strip().startswith(phase)]
    assert bars, text
    found = re.search(r"(\d+)/(\d+)", bars[-1])
    assert found, bars[-1]
    return found.group(0)


def test_the_bars_end_where_the_summary_says(project_dir: Path) -> None:
    text = in_terminal(project_dir, "run")
    built = re.search(r"Built (\d+)/(\d+) relations", text)
    assert built and last_bar(text, "build") == f"{built.group(1)}/{built.group(2)}"
    assert last_bar(text, "extract") == re.search(r"Extracted (\d+/\d+) tables", text).group(1)  # type: ignore[union-attr]
    # the extract bar counts the rows of the table it is reading as they are written
    assert re.search(r"^extract .*shop\.\w+ [\d,]+ rows", text, re.M), text

    # the whole-warehouse step reads as what it does, not as the relation "*"
    assert [line for line in text.splitlines() if line.startswith("build") and " * " in line] == [], text

    text = in_terminal(project_dir, "update", "shop.orders")
    built = re.search(r"Built (\d+)/(\d+) relations", text)
    assert built and last_bar(text, "update") == f"{built.group(1)}/{built.group(2)}"


def test_quiet_prints_the_outcome_line_and_very_quiet_nothing(project_dir: Path) -> None:
    quiet = run_cli("-p", str(project_dir), "-q", "run")
    assert quiet.code == 0, quiet.output
    assert re.fullmatch(r"Run \S+ succeeded in [\d.]+ s\n", quiet.stdout)
    silent = run_cli("-p", str(project_dir), "load", "-qq")
    assert (silent.code, silent.stdout) == (0, "")


def test_a_transform_only_run_does_not_report_an_empty_extract(project_dir: Path) -> None:
    assert run_cli("-p", str(project_dir), "run").code == 0
    done = run_cli("-p", str(project_dir), "run", "mart")
    assert done.code == 0, done.output
    assert "Extracted" not in done.stdout and "Built 3/3 relations" in done.stdout
