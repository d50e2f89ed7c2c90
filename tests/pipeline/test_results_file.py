"""A pipeline run writes the run results file too, with the steps of both its environments."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema

from conveyor.results import LATEST, RUNS_DIR, json_schema

from .conftest import conveyor


def test_a_pipeline_run_writes_its_results(pipeline_project: Callable[..., Path]) -> None:
    root = pipeline_project({"nightly": "schedule: manual\nenvironments: {primary: dev, secondary: dev2}\n"})
    done = conveyor(root, "pipeline", "run", "nightly", "--format", "json")
    assert done.code == 0, done.output
    run_id = done.json()["run_id"]
    document = json.loads((root / RUNS_DIR / f"{run_id}.json").read_text())
    assert (root / LATEST).read_text() == (root / RUNS_DIR / f"{run_id}.json").read_text()
    assert list(jsonschema.Draft202012Validator(json_schema()).iter_errors(document)) == []

    run = document["run"]
    assert (run["command"], run["pipeline"], run["status"]) == ("pipeline", "nightly", "succeeded")
    assert (run["environment"], run["environments"]) == ("dev", ["dev", "dev2"])
    assert {(s["step"], s["environment"]) for s in run["steps"]} >= {("publish", "dev"), ("publish", "dev2")}
    customers = next(r for r in document["relations"] if r["relation"] == "shop.customers")
    assert [(s["step"], s["environment"]) for s in customers["steps"]] == [
        ("extract", None),
        ("load", "dev"),
        ("check", "dev"),
        ("load", "dev2"),
        ("check", "dev2"),
    ]
    assert customers["status"] == "succeeded" and customers["kind"] == "source"
    events = conveyor(root, "runs", "show", run_id, "--format", "json").json()["events"]
    steps = sum(len(r["steps"]) for r in document["relations"]) + len(run["steps"])
    assert steps == len(events)
