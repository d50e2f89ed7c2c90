"""Pipeline definitions get the same file:line errors as every project file, and exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import SchedulerProcess, conveyor, write_pipeline


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "description: typo below\nschedul: nightly at 02:30\nenvironments: {primary: dev}\n",
            ['pipelines/broken.yaml:2: unknown key "schedul" in pipeline definition. Did you mean "schedule"?'],
        ),
        (
            "description: a bad time\nschedule: nightly at 25:00 Europe/Berlin\nenvironments: {primary: dev}\n",
            ['pipelines/broken.yaml:2: schedule: "25:00" is not a time of day.'],
        ),
        (
            "schedule: nightly at 02:30 Europe/Berln\nenvironments: {primary: dev}\n",
            ['pipelines/broken.yaml:1: schedule: "Europe/Berln" is not a time zone'],
        ),
        (
            "schedule: manual\nenvironments:\n  primary: dev\n  secondary: devv\n",
            [
                'pipelines/broken.yaml:4: pipeline "broken" names environment "devv", which is not defined. '
                'Did you mean "dev"?'
            ],
        ),
        (
            "schedule: manual\nenvironments: {primary: dev}\ntimeout: 2 days\n",
            ['pipelines/broken.yaml:3: timeout: "2 days" is not a duration'],
        ),
        (
            "schedule: manual\nenvironments: {primary: dev}\ngrace: soon\n",
            ['pipelines/broken.yaml:3: grace: "soon" is not a duration'],
        ),
        (
            "schedule: manual\nenvironments: {primary: dev}\nnotify:\n  - {url: 'json://h/p', on: [sucess]}\n",
            ['pipelines/broken.yaml:4: notify.0.on.0: "sucess" is not one of success, failure.'],
        ),
        (
            "schedule: manual\nenvironments: {primary: dev}\nselection: [mrt.*]\n",
            ['pipelines/broken.yaml:3: selection "mrt.*" matches no relation. Did you mean "mart"?'],
        ),
    ],
    ids=[
        "unknown-key",
        "bad-time",
        "bad-zone",
        "unknown-environment",
        "bad-timeout",
        "bad-grace",
        "bad-on",
        "selection",
    ],
)
def test_definition_errors_name_file_and_line(
    pipeline_project: Callable[..., Path], text: str, expected: list[str]
) -> None:
    root = pipeline_project({"broken": text})
    for args in (("pipeline", "install", "broken"), ("pipeline", "run", "broken"), ("pipeline", "show", "broken")):
        result = conveyor(root, *args)
        assert result.code == 2, (args, result.output)
        flat = " ".join(result.stderr.split())
        assert flat.startswith("Error: "), flat
        for line in expected:
            assert line in flat, flat
    assert not (root / "warehouse.duckdb").exists()  # nothing ran


def test_errors_in_conveyor_yaml_pipelines_name_its_line(pipeline_project: Callable[..., Path]) -> None:
    root = pipeline_project()
    settings = root / "conveyor.yaml"
    settings.write_text(
        settings.read_text()
        + "pipelines:\n  nightly:\n    schedule: cron 99 2 * * *\n    environments: {primary: dev}\n"
    )
    lines = settings.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "cron 99" in text)
    result = conveyor(root, "pipeline", "install", "nightly")
    assert result.code == 2
    assert f'conveyor.yaml:{line}: pipelines.nightly.schedule: "99 2 * * *" is not a valid cron expression' in " ".join(
        result.stderr.split()
    )


def test_every_problem_is_reported_at_once(pipeline_project: Callable[..., Path]) -> None:
    root = pipeline_project(
        {
            "one": "schedule: manual\nenvironments: {primary: nope}\n",
            "two": "schedule: manual\nenvironments: {primary: dev}\nretries: 99\n",
        }
    )
    result = conveyor(root, "pipeline", "install", "two")
    assert result.code == 2
    flat = " ".join(result.stderr.split())
    assert "pipelines/one.yaml:2:" in flat and "pipelines/two.yaml:3: retries:" in flat


def test_unknown_pipeline_names_did_you_mean(pipeline_project: Callable[..., Path]) -> None:
    root = pipeline_project({"nightly": "schedule: manual\nenvironments: {primary: dev}\n"})
    result = conveyor(root, "pipeline", "install", "nightlly")
    assert result.code == 2
    assert 'the project has no pipeline "nightlly". Did you mean "nightly"?' in " ".join(result.stderr.split())
    paused = conveyor(root, "pipeline", "pause", "nightly")
    assert paused.code == 2 and 'pipeline "nightly" is not installed.' in paused.stderr


@pytest.mark.slow
def test_the_scheduler_refuses_to_start_on_a_broken_definition(
    pipeline_project: Callable[..., Path], schedulers: Callable[..., SchedulerProcess], store_of: Callable[..., Any]
) -> None:
    root = pipeline_project({"nightly": "schedule: nightly at 02:30\nenvironments: {primary: dev}\n"})
    assert conveyor(root, "pipeline", "install", "nightly").code == 0
    # a broken SQL file is no reason not to schedule: its runs fail, recorded and notified
    (root / "schemas" / "mart" / "report.sql").write_text("SELECT FROM WHERE\n")
    store = store_of(root)
    running = schedulers(root)
    running.wait_started(store)
    assert running.stop() == 0
    write_pipeline(root, "nightly", "schedule: nightly at 02:30\nenvironments: {primary: dev}\ntimeout: forever\n")
    scheduler = schedulers(root)
    assert scheduler.wait() == 2
    assert 'pipelines/nightly.yaml:3: timeout: "forever" is not a duration' in " ".join(scheduler.output().split())
    assert store.lock_holder("scheduler") is None


def test_show_prints_the_definition_and_the_resolved_steps(pipeline_project: Callable[..., Path]) -> None:
    root = pipeline_project(
        {
            "nightly": """\
                schedule: nightly at 02:30 Europe/Berlin
                environments: {primary: dev, secondary: dev2}
                selection: [mart]
                setup: ["./refresh-credentials.sh"]
                deadman: ${HEALTHCHECK_URL}
                notify:
                  - {url: "json://${HOOK_HOST}/hook", on: [success, failure]}
                  - {url: "mailto://${SMTP_HOST}?to=ops@example.com"}
                """
        }
    )
    shown = conveyor(root, "pipeline", "show", "nightly", "--format", "json")
    assert shown.code == 0, shown.output  # secrets need not be set to show a pipeline
    data = shown.json()
    assert data["definition"]["schedule"] == "nightly at 02:30 Europe/Berlin"
    assert data["definition"]["notify"][0]["on"] == ["success", "failure"]
    assert data["steps"] == [
        "setup: ./refresh-credentials.sh",
        "dead-man switch: /start",
        "extract (mart)",
        "load into dev",
        "load into dev2",
        "dead-man switch: success or /fail",
        "notify success, failure: json://…",
        "notify failure: mailto://…",
    ]
    assert data["runs"] == []
    text = conveyor(root, "pipeline", "show", "nightly")
    assert text.code == 0
    assert "Pipeline nightly  (pipelines/nightly.yaml:1)" in text.stdout
    assert "deadman:\n- ${HEALTHCHECK_URL}" in text.stdout  # as written, never resolved
    assert "  3. extract (mart)" in text.stdout
    assert 'Recent runs: none yet; "conveyor pipeline run nightly" runs it now.' in text.stdout  # not an empty table


def test_list_shows_defined_installed_and_changed_pipelines_and_the_scheduled_run_uses_the_installed_copy(
    pipeline_project: Callable[..., Path],
) -> None:
    root = pipeline_project({"nightly": "schedule: manual\nenvironments: {primary: dev}\n"})

    def listed() -> dict[str, Any]:
        done = conveyor(root, "pipeline", "list", "--format", "json")
        assert done.code == 0, done.output
        return {row["name"]: row for row in done.json()}

    dry = conveyor(root, "pipeline", "run", "nightly", "--dry-run", "--format", "json")
    assert dry.code == 0, dry.output
    assert dry.json() == {"name": "nightly", "dry_run": True, "steps": ["extract", "load into dev"]}
    assert not (root / "lake").exists() and not (root / "warehouse.duckdb").exists()

    rows = listed()
    assert (rows["nightly"]["status"], rows["nightly"]["definition"]) == ("not installed", "not installed")
    assert rows["nightly"]["last_run"] is None  # the dry run recorded nothing
    text = conveyor(root, "pipeline", "list")
    assert "not installed" in text.stdout and "conveyor pipeline install nightly" in text.stdout

    assert conveyor(root, "pipeline", "install", "nightly").code == 0
    assert listed()["nightly"]["definition"] == "installed" and listed()["nightly"]["note"] is None

    # edited after install: the list says so, and a run by hand says which definition it uses
    write_pipeline(root, "nightly", "schedule: manual\nenvironments: {primary: dev2}\n")
    assert listed()["nightly"]["definition"] == "changed since install"
    done = conveyor(root, "pipeline", "run", "nightly")
    assert done.code == 0, done.output
    assert 'pipeline "nightly" changed since it was installed' in done.stdout
    assert "This run uses the file." in done.stdout
    assert "load dev2" in done.stdout.replace("✓ ", "")

    # the scheduler's worker runs the installed copy (into dev), and says why
    import subprocess
    import sys
    from datetime import UTC, datetime

    worker = subprocess.run(
        [sys.executable, "-m", "conveyor.pipeline.worker", "--project", str(root), "--run-id", "w1",
         "--slot", datetime.now(UTC).isoformat(), "nightly"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert "scheduled runs use the installed copy" in worker.stderr
    shown = conveyor(root, "runs", "show", "w1", "--format", "json").json()
    assert {e["environment"] for e in shown["events"] if e.get("environment")} == {"dev"}

    (root / "pipelines" / "nightly.yaml").unlink()
    assert listed()["nightly"]["definition"] == "not defined"
