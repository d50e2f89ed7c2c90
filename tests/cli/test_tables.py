"""Tables never cut what identifies or counts: every table-printing command, rendered at 80
columns on a real pseudo-terminal and into a pipe, shows each run id, relation name and number
of its JSON output whole."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from testkit.cli import CONVEYOR, cli_env, run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def piped(root: Path, *args: str) -> str:
    done = run_cli("-p", str(root), *args, env={"COLUMNS": "80"})
    assert done.code == 0, done.output
    return done.stdout


def in_terminal(root: Path, *args: str) -> str:
    command = " ".join([CONVEYOR, "-p", str(root), *args])
    env = cli_env({"COLUMNS": "80", "LINES": "50", "TERM": "xterm"})
    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout
    return ANSI.sub("", done.stdout.replace("\r", ""))


def whole(values: list[str], text: str) -> None:
    """Every value appears whole in the text, bounded by spaces, a box rule or the line's ends."""
    for value in values:
        pattern = rf"(^|[\s│┃]){re.escape(value)}($|[\s│┃])"
        assert re.search(pattern, text, re.M), f"{value!r} is cut in:\n{text}"


@pytest.fixture(scope="module")
def primed(tmp_path_factory: pytest.TempPathFactory, new_project: Any) -> Path:
    root: Path = new_project(tmp_path_factory.mktemp("tables") / "project")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "a_pipeline_with_a_rather_long_name.yaml").write_text(
        "schedule: cron 15 3 * * 1-5 Europe/Berlin\nenvironments: {primary: dev}\n"
    )
    assert run_cli("-p", str(root), "-q", "run").code == 0
    assert run_cli("-p", str(root), "-q", "pipeline", "run", "a_pipeline_with_a_rather_long_name").code == 0
    return root


def json_of(root: Path, *args: str) -> Any:
    return run_cli("-p", str(root), *args, "--format", "json").json()


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux's script")
@pytest.mark.parametrize("render", [piped, in_terminal], ids=["piped", "terminal"])
def test_no_id_name_or_number_is_cut(primed: Path, render: Any) -> None:
    runs = json_of(primed, "runs")
    whole([r["run_id"] for r in runs], render(primed, "runs"))

    events = json_of(primed, "runs", "show", runs[-1]["run_id"])["events"]
    shown = render(primed, "runs", "show", runs[-1]["run_id"])
    whole([e["relation"] for e in events], shown)
    whole([f"{e['rows']:,}" for e in events if e["rows"] is not None], shown)

    state = json_of(primed, "extract", "status")
    status = render(primed, "extract", "status")
    whole([s["table_name"] for s in state] + [f"{s['rows']:,}" for s in state], status)

    listed = json_of(primed, "ls")
    whole([r["name"] for r in listed], render(primed, "ls"))

    pipelines = json_of(primed, "pipeline", "list")
    whole([p["name"] for p in pipelines], render(primed, "pipeline", "list"))
    whole([r["run_id"] for r in runs if r["pipeline"]], render(primed, "pipeline", "show", pipelines[0]["name"]))


def test_a_pipe_gets_plain_text_without_box_drawing(primed: Path) -> None:
    for args in (("runs",), ("extract", "status"), ("ls",), ("pipeline", "list")):
        text = piped(primed, *args)
        assert not set("│┃━╇─") & set(text), text


def test_runs_and_runs_show_print_the_first_line_of_an_error_whole(tmp_path: Path, new_project: Any) -> None:
    """A long error was cut at 80 characters, mid-word; only JSON showed it whole."""
    root: Path = new_project(tmp_path / "project")
    long_name = "a_column_name_long_enough_to_push_the_error_well_past_eighty_characters"
    (root / "schemas" / "mart" / "broken.yaml").write_text("name: mart.broken\nkind: ctas\n")
    (root / "schemas" / "mart" / "broken.sql").write_text(f"SELECT CAST('x' AS integer) AS {long_name}\n")
    assert run_cli("-p", str(root), "-q", "run").code == 1
    events = json_of(root, "runs", "show", "last")["events"]
    [error] = [e["error"] for e in events if e["status"] == "failed"]
    first = error.splitlines()[0]
    assert len(first) > 80
    for render in (piped, in_terminal):
        shown = render(root, "runs", "show", "last")
        table = shown[shown.index("relation") :]  # the step table, below the run's own error
        text = " ".join(table.replace("│", " ").split())  # a terminal wraps the error column
        assert " ".join(first.split()) in text, shown
    [run] = json_of(root, "runs")[:1]
    first = run["error"].splitlines()[0]
    assert len(first) > 60
    for render in (piped, in_terminal):
        shown = render(root, "runs")
        assert " ".join(first.split()) in " ".join(shown.replace("│", " ").split()), shown
