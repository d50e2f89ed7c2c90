"""The ``command`` job type with the lake on S3: the program writes files into a local staging
folder, Conveyor checks them, uploads them into the bucket and commits the manifest there.

The project and the program are the local suite's (tests/extract/test_command.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from extract.conftest import extract, lake, load, manifest_table, result_of, warehouse_rows
from extract.test_command import (
    PASSWORD,
    evidence,
    project,  # noqa: F401 - the fixture
    set_mode,
    sqlite_command_project,
)

pytestmark = pytest.mark.usefixtures("s3_lake")


@pytest.mark.postgres
def test_command_parts_are_staged_locally_then_committed_in_the_bucket(
    tmp_path: Path,
    project: Path,  # noqa: F811 - the fixture imported above
    pg: Any,
    s3_lake: str,
) -> None:
    outcome = extract(project)
    assert outcome.ok, outcome.extract
    manifest = lake(project).latest("up", "up.t")
    assert manifest is not None and manifest.job_type == "command" and manifest.rows == 3
    assert manifest.location.startswith(f"{s3_lake}/") and manifest.folder is None
    assert manifest.extract_id == result_of(outcome, "up.t").extract_id
    rows = sorted(manifest_table(manifest).to_pylist(), key=lambda r: r["id"])
    upstream = pg.execute("SELECT id, name, amount, at FROM t ORDER BY id").fetchall()
    assert [(r["id"], r["name"], r["amount"], r["at"]) for r in rows] == upstream
    # the bucket holds exactly the manifest and the parts it names, byte for byte
    store = manifest.store
    assert store is not None
    stored = {o.key.rsplit("/", 1)[-1]: o.size for o in store.objects(manifest.key)}
    assert stored == {"manifest.json": len(manifest.encoded()), **{p.path: p.bytes for p in manifest.files}}

    seen = evidence(tmp_path)
    staging = Path(seen["folder"])
    assert not staging.exists() and not staging.is_relative_to(project)  # staged on local disk, then removed
    assert not Path(seen["argv"][2]).exists() and not Path(seen["argv"][2]).parent.exists()  # the job file too
    assert not (project / "lake").exists()  # nothing of the lake on local disk
    for shown in (json.dumps(seen), manifest.query, json.dumps(manifest.to_json())):
        assert PASSWORD not in shown, "the DSN must not reach a command line"

    load(project)
    assert [r[:3] for r in warehouse_rows(project, "up.t", "id")] == [(r["id"], r["name"], r["amount"]) for r in rows]

    # a failed command leaves the committed extract as the newest, and nothing else in the bucket
    before = {o.key for o in store.objects("")}
    set_mode(project, "wrong-schema")
    error = result_of(extract(project), "up.t").error
    assert 'part-00000.parquet of "up.t" has schema' in error, error
    assert lake(project).latest("up", "up.t").extract_id == manifest.extract_id  # type: ignore[union-attr]
    assert {o.key for o in store.objects("")} == before


def test_command_job_on_a_sqlite_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = sqlite_command_project(tmp_path, monkeypatch, "ä")
    assert extract(root).ok
    manifest = lake(root).latest("up", "up.people")
    assert manifest is not None and manifest.location.startswith("s3://")
    assert manifest_table(manifest).to_pylist() == [{"id": 1, "name": "ä"}, {"id": 2, "name": None}]
    assert not any(name.startswith("conveyor-") and "job" in name for name in os.listdir(tmp_path))
