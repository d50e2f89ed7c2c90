"""SIGKILL in the middle of an extract: nothing half-written is ever visible, nothing advances."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import CONVEYOR, columns, extract, extract_attempts, extract_state, lake, warehouse_rows, write_project

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NEW_ROWS = 50_000


def wait_for_part(table_dir: Path, process: subprocess.Popen, known: set[str], timeout: float = 30) -> Path:
    """The first part file of a new (uncommitted) extract folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in table_dir.iterdir():
            if folder.is_dir() and folder.name not in known and any(folder.glob("part-*.parquet")):
                return folder
        assert process.poll() is None, "the extract finished before a part file was seen"
        time.sleep(0.002)
    raise AssertionError("no part file appeared")


def test_killed_extract_leaves_nothing_visible_and_the_rerun_is_complete(
    tmp_path: Path, pg, pg_dsn: str, monkeypatch
) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, v text);"
        "INSERT INTO big SELECT g, 'r' || g FROM generate_series(1, 10) g"
    )
    design = {
        "columns": columns(("id", "bigint"), ("v", "text")),
        "constraints": {"primary_key": ["id"]},
        "extract": {"incremental": {"cursor": "id"}},
    }
    root = write_project(tmp_path / "p", "postgres", designs={"big": design})
    assert extract(root).ok
    first = lake(root).latest("up", "up.big")
    assert first is not None and first.watermark["value"] == 10
    watermark_before = extract_state(root)["up.big"].watermark

    pg.execute(f"INSERT INTO big SELECT g, repeat('x', 40) || g FROM generate_series(11, {NEW_ROWS + 10}) g")
    table_dir = root / "lake/data/up/up.big"
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    with subprocess.Popen(
        [CONVEYOR, "-p", str(root), "extract"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        try:
            killed_folder = wait_for_part(table_dir, process, {first.extract_id})
            process.send_signal(signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.wait(10) == -signal.SIGKILL

    # the half-written extract is on disk but invisible
    assert killed_folder.is_dir() and not (killed_folder / "manifest.json").exists()
    assert [m.extract_id for m in lake(root).committed("up", "up.big")] == [first.extract_id]
    assert lake(root).latest("up", "up.big").extract_id == first.extract_id
    state = extract_state(root)["up.big"]
    assert state.watermark == watermark_before
    assert state.last_success_extract_id == first.extract_id
    assert state.last_extract_id == killed_folder.name and state.status == "abandoned"  # its run is dead
    (attempt,) = [a for a in extract_attempts(root, "up.big") if a.extract_id == killed_folder.name]
    assert attempt.status == "abandoned" and attempt.watermark_high is None

    rerun = extract(root)
    assert rerun.ok, rerun.extract
    assert not killed_folder.exists()  # the leftover is cleaned up under the table's lock
    committed = lake(root).committed("up", "up.big")
    assert [m.extract_id for m in committed][:1] == [first.extract_id] and len(committed) == 2
    increment = committed[1]
    assert increment.incremental and increment.rows == NEW_ROWS + 1  # and row 10, at the watermark
    assert increment.watermark["low"] == 10 and increment.watermark["value"] == NEW_ROWS + 10
    assert sorted(p.name for p in increment.folder.iterdir()) == sorted(
        [*(f.path for f in increment.files), "manifest.json"]
    )
    from conveyor import api

    assert api.load(api.open_project(root)).ok
    assert warehouse_rows(root, "(SELECT count(*), count(DISTINCT id), max(id) FROM up.big)", "1") == [
        (NEW_ROWS + 10, NEW_ROWS + 10, NEW_ROWS + 10)
    ]
