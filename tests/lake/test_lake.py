"""The lake: manifests commit extracts, crashes leave nothing visible, retention keeps the newest."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import LakeError
from conveyor.lake.lake import Lake, decode_name, encode_name, new_extract_id
from conveyor.lake.manifest import MANIFEST, Manifest, read_manifest, write_manifest
from conveyor.lake.parts import PartWriter

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def batch(start: int, count: int) -> pa.RecordBatch:
    ids = list(range(start, start + count))
    return pa.RecordBatch.from_arrays([pa.array(ids, pa.int64()), pa.array([f"n{i}é" for i in ids])], schema=SCHEMA)


def commit(folder: Path, rows: int = 10, *, part_rows: int = 1000, relation: str | None = None) -> Manifest:
    """Write ``rows`` rows into ``folder`` and commit them with a manifest (of the relation owning the folder)."""
    writer = PartWriter(folder, SCHEMA, part_rows=part_rows)
    writer.write(batch(0, rows))
    parts = writer.close()
    now = datetime.now(UTC).isoformat()
    relation = relation or decode_name(folder.parent.name)
    manifest = Manifest(folder.name, "src", "main.t", relation, parts, SCHEMA, "SELECT 1", now, now)
    write_manifest(folder, manifest)
    return read_manifest(folder)


def parts_only(folder: Path, rows: int = 10) -> None:
    """An extract that crashed after writing its parts: no manifest."""
    writer = PartWriter(folder, SCHEMA, part_rows=1000)
    writer.write(batch(0, rows))
    writer.close()


def test_extract_ids_sort_by_time() -> None:
    early = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    ids = [new_extract_id(early + timedelta(microseconds=n)) for n in (0, 1, 10, 1_000_000)]
    assert ids == sorted(ids)
    assert ids[0].startswith("20260102T030405000006Z-")
    assert len({new_extract_id(early) for _ in range(50)}) == 50


def test_folder_without_manifest_is_invisible(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    table = lake.table_dir("src", "main.t")
    committed = commit(_mkdir(table / new_extract_id(datetime(2026, 1, 1, tzinfo=UTC))))
    parts_only(_mkdir(table / new_extract_id(datetime(2026, 1, 2, tzinfo=UTC))), rows=99)
    assert [m.extract_id for m in lake.committed("src", "main.t")] == [committed.extract_id]
    latest = lake.latest("src", "main.t")
    assert latest is not None and latest.extract_id == committed.extract_id and latest.rows == 10


def test_nothing_committed(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    parts_only(_mkdir(lake.table_dir("src", "main.t") / new_extract_id()))
    assert lake.latest("src", "main.t") is None
    assert lake.committed("src", "main.t") == []
    assert lake.latest("src", "other") is None
    with pytest.raises(LakeError) as info:
        lake.require_latest("src", "main.t")
    assert "conveyor extract main.t" in info.value.render()
    assert info.value.exit_code == 2


def test_manifest_appears_atomically(tmp_path: Path) -> None:
    folder = _mkdir(tmp_path / "x")
    manifest = commit(folder, rows=5)
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "part-00000.parquet"]  # no temp file left
    data = json.loads((folder / MANIFEST).read_text())
    assert data["rows"] == 5 and data["files"][0]["rows"] == 5
    assert data["checksum"] == manifest.checksum
    assert manifest.arrow_schema.equals(SCHEMA)


def test_writing_removes_leftovers_of_a_crashed_extract(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    table = lake.table_dir("src", "main.t")
    kept = commit(_mkdir(table / new_extract_id(datetime(2026, 1, 1, tzinfo=UTC))))
    leftover = _mkdir(table / new_extract_id(datetime(2026, 1, 2, tzinfo=UTC)))
    parts_only(leftover)
    with lake.writing("src", "main.t") as folder_target:
        folder = folder_target.folder
        assert not leftover.exists()
        assert folder.is_dir() and folder.parent == table and list(folder.iterdir()) == []
        assert (kept.folder / MANIFEST).exists()
        commit(folder, rows=3)
    assert [m.rows for m in lake.committed("src", "main.t")] == [10, 3]


def test_crash_inside_writing_leaves_no_extract(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"), lake.writing("src", "main.t") as folder_target:
        folder = folder_target.folder
        seen.append(folder)
        parts_only(folder, rows=50)
        raise RuntimeError("boom")
    assert not seen[0].exists()
    assert lake.latest("src", "main.t") is None
    assert [p.name for p in lake.table_dir("src", "main.t").iterdir()] == [".lock"]


def test_a_second_writer_of_the_same_table_is_refused(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    with lake.writing("src", "main.t") as first_target:
        first = first_target.folder
        with pytest.raises(LakeError, match="another extract"), lake.writing("src", "main.t"):
            pass
        assert first.exists()  # the refused writer did not clean up the running one
        with lake.writing("src", "main.other") as other_target:
            other = other_target.folder
            assert other.exists()


def test_a_second_writer_waits_for_the_first_and_gives_up_after_its_timeout(tmp_path: Path) -> None:
    """Two pipelines extracting one table at once are serialized, not failed (lake.lock_timeout)."""
    import subprocess
    import sys
    import time

    lake = Lake(tmp_path)
    holder = (
        "import sys, time; from pathlib import Path; from conveyor.lake.lake import Lake\n"
        "with Lake(Path(sys.argv[1])).writing('src', 'main.t'):\n"
        "    print('locked', flush=True); time.sleep(float(sys.argv[2]))\n"
    )
    first = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path), "1.0"], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None and first.stdout.readline().strip() == "locked"
    said: list[str] = []
    began = time.monotonic()
    with lake.writing("src", "main.t", wait_s=30, waiting=said.append) as folder_target:
        folder = folder_target.folder
        assert folder.exists() and time.monotonic() - began > 0.3  # it waited for the other writer
    assert first.wait(timeout=30) == 0
    assert said == [f'waiting for another extract of "main.t" to finish (pid {first.pid} on {socket.gethostname()})']
    second = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert second.stdout is not None and second.stdout.readline().strip() == "locked"
        with (
            pytest.raises(LakeError, match=r"did not finish within 0.5 s") as raised,
            lake.writing("src", "main.t", wait_s=0.5),
        ):
            pass
        assert "lake.lock_timeout" in (raised.value.hint or "")
    finally:
        second.kill()
        second.wait()


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    table = lake.table_dir("src", "main.t")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [commit(_mkdir(table / new_extract_id(start + timedelta(hours=h))), rows=h + 1).extract_id for h in range(5)]
    assert lake.prune("src", "main.t", keep=2) == ids[:3]
    assert [m.extract_id for m in lake.committed("src", "main.t")] == ids[3:]
    assert sorted(p.name for p in table.iterdir() if p.is_dir()) == ids[3:]
    assert lake.latest("src", "main.t").rows == 5
    assert lake.prune("src", "main.t", keep=2) == []


@pytest.mark.parametrize(
    ("batches", "part_rows", "expected"),
    [
        ([700] * 5, 1000, [1000, 1000, 1000, 500]),
        ([2500], 1000, [1000, 1000, 500]),
        ([1000, 1000], 1000, [1000, 1000]),
        ([3, 0, 4], 1000, [7]),
        ([], 1000, [0]),  # an empty extract still has one part with the schema
    ],
)
def test_part_writer_rolls_over_and_checksums(
    tmp_path: Path, batches: list[int], part_rows: int, expected: list[int]
) -> None:
    writer = PartWriter(tmp_path, SCHEMA, part_rows=part_rows)
    start = 0
    for count in batches:
        writer.write(batch(start, count))
        start += count
    parts = writer.close()
    assert [p.rows for p in parts] == expected
    assert [p.path for p in parts] == [f"part-{i:05d}.parquet" for i in range(len(expected))]
    ids: list[int] = []
    for part in parts:
        data = (tmp_path / part.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == part.sha256
        assert len(data) == part.bytes
        table = pq.read_table(tmp_path / part.path)
        assert table.schema.equals(SCHEMA)
        assert table.num_rows == part.rows
        ids += table.column("id").to_pylist()
    assert ids == list(range(start))


def test_part_writer_abort_keeps_no_open_file(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, SCHEMA, part_rows=1000)
    writer.write(batch(0, 1500))
    writer.abort()
    assert [p.rows for p in writer.parts] == [1000]
    assert writer._writer is None


def test_parts_store_small_decimals_as_integers_and_read_back_exactly(tmp_path: Path) -> None:
    from decimal import Decimal

    schema = pa.schema(
        [
            pa.field("price", pa.decimal128(15, 2)),
            pa.field("wide", pa.decimal128(38, 9)),
            pa.field("qty", pa.int32()),
            pa.field("note", pa.string()),
            pa.field("tags", pa.list_(pa.string())),
        ]
    )
    table = pa.table(
        {
            "price": [Decimal("-9999999999999.99"), None, Decimal("0.01")],
            "wide": [Decimal("12345678901234567890123456789.123456789"), Decimal("-1"), None],
            "qty": [1, None, 3],
            "note": ["a", "", None],
            "tags": [["x", None], None, []],
        },
        schema=schema,
    )
    writer = PartWriter(tmp_path, schema)
    writer.write(table.to_batches()[0])
    (part,) = writer.close()
    parquet = pq.ParquetFile(tmp_path / part.path)
    physical = {parquet.schema.column(i).path: parquet.schema.column(i).physical_type for i in range(5)}
    assert physical["price"] == "INT64" and physical["wide"] == "FIXED_LEN_BYTE_ARRAY"
    group = parquet.metadata.row_group(0)
    dictionary = {group.column(i).path_in_schema: group.column(i).dictionary_page_offset is not None for i in range(5)}
    assert dictionary == {"price": False, "wide": False, "qty": False, "note": True, "tags.list.element": True}
    assert parquet.read().equals(table)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


# -------------------------------------------------------------------------- a real kill

BIG_ROWS = 200_000


def _big_project(make_project: Callable[..., Path]) -> Path:
    root = make_project(
        designs={
            "shop/big.yaml": "name: shop.big\ncolumns:\n  - name: id\n    type: bigint\n"
            "  - name: label\n    type: text\n  - name: amount\n    type: decimal(12,2)\n",
        }
    )
    con = sqlite3.connect(root / "upstream.db")
    con.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, amount NUMERIC(12,2))")
    con.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO big SELECT i, 'label ' || i || ' ✓', (i % 1000) / 100.0 FROM n",
        (BIG_ROWS,),
    )
    con.commit()
    con.close()
    return root


@pytest.mark.slow
def test_killed_extract_leaves_nothing_visible_and_rerun_commits_once(
    make_project: Callable[..., Path], cli: Callable[..., object]
) -> None:
    root = _big_project(make_project)
    table = root / "lake" / "data" / "shop" / "shop.big"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CONVEYOR_PROJECT", None)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "conveyor"), "-q", "extract", "shop.big"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if len(list(table.glob("*/part-*.parquet"))) >= 2:
                break
            time.sleep(0.005)
        assert process.poll() is None, "the extract finished before it could be killed; make the table bigger"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    lake = Lake(root / "lake")
    assert lake.latest("shop", "shop.big") is None
    assert lake.committed("shop", "shop.big") == []
    leftovers = [p for p in table.iterdir() if p.is_dir()]
    assert len(leftovers) == 1 and not (leftovers[0] / MANIFEST).exists()  # the crash's parts, uncommitted

    again = cli("-q", "extract", "shop.big", cwd=root)
    assert again.code == 0, again.stderr
    committed = lake.committed("shop", "shop.big")
    assert len(committed) == 1
    assert committed[0].rows == BIG_ROWS
    assert len(committed[0].files) == BIG_ROWS // 1000
    assert [p for p in table.iterdir() if p.is_dir()] == [committed[0].folder]  # leftovers removed
    ids = pa.concat_tables(pq.read_table(p, columns=["id"]) for p in committed[0].paths()).column("id")
    assert ids.to_pylist() == list(range(1, BIG_ROWS + 1))


# -------------------------------------------------------------------------- names in paths


@given(st.text(min_size=1, max_size=80))
@settings(max_examples=300, deadline=None)
def test_any_name_is_one_component_inside_the_lake_and_comes_back(name: str) -> None:
    try:
        component = encode_name(name)
    except LakeError:
        assert len(name.encode("utf-8")) * 3 > 255  # only names too long once encoded are refused
        return
    assert decode_name(component) == name
    assert "/" not in component and "\\" not in component and "\x00" not in component
    assert component not in (".", "..") and not component.startswith(".")
    lake = Lake(Path("/lake/root"))
    folder = lake.table_dir(name, name)
    assert folder.parent.parent == lake.data and folder.name == component


HOSTILE = ["..", ".", "../../etc", "x/../../../../outside/escaped", ".lock", "a\\b", "%2e%2e", "\x00"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inside(tmp_path: Path, name: str) -> None:
    lake = Lake(tmp_path / "lake")
    with lake.writing("src", name) as folder_target:
        folder = folder_target.folder
        commit(folder, rows=1)
    assert folder.resolve().is_relative_to((tmp_path / "lake" / "data" / "src").resolve())
    assert [p.name for p in (tmp_path / "lake" / "data" / "src").iterdir()] == [encode_name(name)]
    assert lake.latest("src", name) is not None and lake.tables() == [("src", name)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]


def test_a_path_outside_the_lake_is_refused(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    with pytest.raises(LakeError, match="outside the lake"):
        lake.inside(tmp_path / "lake" / "data" / ".." / "elsewhere")
    with pytest.raises(LakeError, match="outside the lake"):
        lake.inside(lake.data)
    with pytest.raises(LakeError, match="too long"):
        encode_name("x" * 300)
    with pytest.raises(LakeError, match="empty"):
        encode_name("")


def test_legacy_folders_count_only_for_their_relation(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    legacy = lake.data / "src" / "main.t"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    mine = commit(_mkdir(legacy / new_extract_id(start)), relation="s.t")
    commit(_mkdir(legacy / new_extract_id(start + timedelta(hours=1))), relation="s.other")
    with lake.writing("src", "s.t") as folder_target:
        folder = folder_target.folder
        newest = commit(folder, rows=3)
    assert [m.extract_id for m in lake.committed("src", "s.t", legacy="main.t")] == [mine.extract_id, newest.extract_id]
    assert [m.extract_id for m in lake.committed("src", "s.t")] == [newest.extract_id]
    assert lake.latest("src", "s.other", legacy="main.t").relation == "s.other"
    assert lake.latest("src", "s.t", legacy="../main.t") is not None  # an unsafe legacy name is never a path
    assert [m.extract_id for m in lake.committed("src", "s.t", legacy="../main.t")] == [newest.extract_id]
    assert lake.prune("src", "s.t", keep=1, legacy="main.t") == [mine.extract_id]
    assert [m.relation for m in lake.committed("src", "s.other", legacy="main.t")] == ["s.other"]
