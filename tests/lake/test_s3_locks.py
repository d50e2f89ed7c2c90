"""Locks of an object-store lake: abandoned parts, live writers, and two hosts sharing a PostgreSQL store.

A "host" is a real process (``python -c``) with its own ``CONVEYOR_HOST_ID`` and its own
temporary directory (``TMPDIR``), so the ``flock`` files one host keeps for an S3 lake are
invisible to the other, as on two machines. Both reach one moto server and, for the
advisory locks, one PostgreSQL database. Every lock test runs with both lock providers a
lake can have: ``files`` (this machine's flock files; the two hosts share a TMPDIR there,
as processes of one machine do) and ``postgres`` (:class:`conveyor.lake.locks.PostgresLocks`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from testkit import services

from conveyor.errors import LakeError
from conveyor.lake.lake import Lake, lake_for
from conveyor.lake.locks import FileLocks, PostgresLocks
from conveyor.lake.manifest import Manifest
from conveyor.lake.readers import ReadLocks
from conveyor.tracking.store import TrackingStore

REPO = Path(__file__).parents[2]
SCHEMA = pa.schema([pa.field("id", pa.int64())])

HOST = """
import sys, time
import pyarrow as pa
from conveyor.lake.lake import lake_for
from conveyor.lake.readers import ReadLocks
from conveyor.tracking.store import TrackingStore
location, dsn, mode = sys.argv[1:4]
tracking = TrackingStore.open(dsn) if dsn else None
lake = lake_for(location, tracking)
if mode == "write":
    with lake.writing("src", "main.t", holder="run on-" + __import__("os").environ["CONVEYOR_HOST_ID"]) as target:
        writer = target.part_writer(pa.schema([pa.field("id", pa.int64())]))
        writer.write(pa.record_batch([pa.array(range(100), pa.int64())], names=["id"]))
        writer.close()  # parts in the store, no manifest: an extract under way
        print("locked", target.key, flush=True)
        sys.stdin.readline()
else:
    reads = ReadLocks()
    reads.hold(lake, "src", "main.t")
    print("locked", flush=True)
    sys.stdin.readline()
    reads.release()
print("done", flush=True)
"""


class Host:
    """A process acting as one machine: its host id, its temporary directory, its lake handle."""

    def __init__(self, name: str, tmp: Path, location: str, dsn: str, mode: str):
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CONVEYOR_HOST_ID": name, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOST, location, dsn, mode],
            env=env, cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != "locked":
            self.process.kill()
            raise AssertionError(f"host {name} did not take its lock: {self.process.communicate()}")
        self.key = line[1] if len(line) > 1 else ""

    def finish(self) -> None:
        out, err = self.process.communicate("\n", timeout=60)
        assert self.process.returncode == 0 and "done" in out, err

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def tracking_dsn() -> Iterator[str]:
    if not services.reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with services.pg_database("conveyor_s3locks") as dsn:
        TrackingStore.open(dsn).close()  # migrated once
        yield dsn


@pytest.fixture(params=["files", "postgres"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., tuple[Lake, str, Path, Path]]:
    """``provider(location)``: this test's lake, the DSN the hosts use ("" for files) and two TMPDIRs."""

    def make(location: str) -> tuple[Lake, str, Path, Path]:
        if request.param == "files":
            # one machine: every process (hosts and the test) shares one temporary directory
            shared = tmp_path / "tmp"
            shared.mkdir(exist_ok=True)
            lake = Lake(location, locks=_lock_folder_under(shared, location))
            return lake, "", shared, shared
        dsn = request.getfixturevalue("tracking_dsn")
        store = TrackingStore.open(dsn)
        request.addfinalizer(store.close)
        return lake_for(location, store), dsn, tmp_path / "tmp-a", tmp_path / "tmp-b"

    return make


def _lock_folder_under(tmp: Path, location: str) -> Path:
    """The lock folder a process whose TMPDIR is ``tmp`` uses for ``location`` (as Lake chooses it)."""
    import hashlib

    return tmp / "conveyor-lake-locks" / hashlib.sha256(location.encode()).hexdigest()[:16]


def _commit_one(lake: Lake, rows: int) -> Manifest:
    from datetime import UTC, datetime

    with lake.writing("src", "main.t") as target:
        writer = target.part_writer(SCHEMA)
        writer.write(pa.record_batch([pa.array(range(rows), pa.int64())], names=["id"]))
        parts = writer.close()
        now = datetime.now(UTC).isoformat()
        manifest = Manifest(target.extract_id, "src", "main.t", "main.t", parts, SCHEMA, "SELECT 1", now, now)
        target.commit(manifest)
    return manifest


def test_the_next_writer_removes_parts_a_killed_writer_left(
    s3_bucket: str, provider: Callable[..., tuple[Lake, str, Path, Path]]
) -> None:
    location = f"s3://{s3_bucket}/lake"
    lake, dsn, tmp_a, _tmp_b = provider(location)
    kept = _commit_one(lake, 3)
    writer = Host("host-a", tmp_a, location, dsn, "write")
    assert [o.key for o in lake.store.objects(writer.key)] == [f"{writer.key}/part-00000.parquet"]
    writer.kill()  # its parts stay, without a manifest
    assert [m.extract_id for m in lake.committed("src", "main.t")] == [kept.extract_id]
    assert lake.latest("src", "main.t") == lake.committed("src", "main.t")[-1]
    with lake.writing("src", "main.t", wait_s=10) as target:
        assert lake.store.objects(writer.key) == []  # the leftover is gone, the committed extract stays
        assert [m.extract_id for m in lake.committed("src", "main.t")] == [kept.extract_id]
        assert target.key != writer.key


def test_a_live_writers_parts_are_never_removed(
    s3_bucket: str, provider: Callable[..., tuple[Lake, str, Path, Path]]
) -> None:
    location = f"s3://{s3_bucket}/lake"
    lake, dsn, tmp_a, _tmp_b = provider(location)
    writer = Host("host-a", tmp_a, location, dsn, "write")
    try:
        said: list[str] = []
        began = time.monotonic()
        with pytest.raises(LakeError) as refused, lake.writing("src", "main.t", wait_s=0.6, waiting=said.append):
            pass
        assert time.monotonic() - began >= 0.5
        text = refused.value.render()
        assert 'another extract of "main.t" (source "src") is running (run on-host-a, pid' in text, text
        assert "did not finish within 0.6 s" in text and "lake.lock_timeout" in text
        assert said and said[0].startswith('waiting for another extract of "main.t" to finish (run on-host-a, pid')
        assert [o.key for o in lake.store.objects(writer.key)] == [f"{writer.key}/part-00000.parquet"]
        writer.finish()  # its extract ends (here without a commit: the writer removes its own parts)
        assert lake.store.objects(writer.key) == []
    finally:
        if writer.process.poll() is None:
            writer.kill()


def test_retention_removes_nothing_another_process_reads(
    s3_bucket: str, provider: Callable[..., tuple[Lake, str, Path, Path]]
) -> None:
    location = f"s3://{s3_bucket}/lake"
    lake, dsn, tmp_a, _tmp_b = provider(location)
    first = _commit_one(lake, 1)
    reader = Host("host-a", tmp_a, location, dsn, "read")
    try:
        second = _commit_one(lake, 2)
        assert lake.prune("src", "main.t", keep=1) == []  # host-a reads: nothing removed
        assert [m.extract_id for m in lake.committed("src", "main.t")] == [first.extract_id, second.extract_id]
        reader.finish()
    finally:
        if reader.process.poll() is None:
            reader.kill()
    assert lake.prune("src", "main.t", keep=1) == [first.extract_id]


@pytest.mark.postgres
def test_two_hosts_sharing_a_postgres_store_never_write_one_relation_at_once(
    s3_bucket: str, tracking_dsn: str, tmp_path: Path
) -> None:
    """Separate TMPDIRs: file locks would let both write; the advisory lock refuses the second host."""
    location = f"s3://{s3_bucket}/lake"
    first = Host("host-a", tmp_path / "a", location, tracking_dsn, "write")
    try:
        script = (
            "import sys\nfrom conveyor.lake.lake import lake_for\nfrom conveyor.tracking.store import TrackingStore\n"
            "lake = lake_for(sys.argv[1], TrackingStore.open(sys.argv[2]))\n"
            "try:\n    with lake.writing('src', 'main.t', wait_s=0.3):\n        print('wrote')\n"
            "except Exception as exc:\n    print(exc.render())\n"
        )
        env = {**os.environ, "CONVEYOR_HOST_ID": "host-b", "TMPDIR": str(tmp_path / "b"), "PYTHONPATH": str(REPO)}
        (tmp_path / "b").mkdir()
        done = subprocess.run(
            [sys.executable, "-c", script, location, tracking_dsn], env=env, capture_output=True, text=True, timeout=60
        )
        assert "running (run on-host-a, pid" in done.stdout and "on host-a)" in done.stdout, done
        assert "advisory lock in the tracking store postgresql://" in done.stdout
        # without the tracking store, host-b's flock files (in its own TMPDIR) would not see host-a
        files = subprocess.run(
            [sys.executable, "-c", script.replace("TrackingStore.open(sys.argv[2])", "None"), location, tracking_dsn],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "wrote" in files.stdout, files
        assert first.process.poll() is None
    finally:
        first.kill()
    # the server dropped host-a's lock with its connection: host-b writes at once
    store = TrackingStore.open(tracking_dsn)
    try:
        with lake_for(location, store).writing("src", "main.t", wait_s=10) as target:
            assert target.key
    finally:
        store.close()


@pytest.mark.postgres
def test_advisory_locks_of_one_process_exclude_each_other(s3_bucket: str, tracking_dsn: str) -> None:
    """Session locks of one session would satisfy each other: each lock has a connection of its own."""
    location = f"s3://{s3_bucket}/lake"
    locks = PostgresLocks(tracking_dsn, location)
    held = locks.try_write("src", "main.t", "one")
    assert held is not None
    assert locks.try_write("src", "main.t", "two") is None
    assert locks.try_write("src", "other", "two") is not None
    reads = ReadLocks()
    lake = Lake(location, locks=locks)
    reads.hold(lake, "src", "main.t")
    reads.hold(lake, "src", "main.t")  # idempotent
    assert locks.try_unread("src", "main.t") is None
    reads.release()
    unread = locks.try_unread("src", "main.t")
    assert unread is not None
    unread.release()
    held.release()
    again = locks.try_write("src", "main.t", "three")
    assert again is not None
    again.release()
    assert isinstance(Lake(location).lock_provider, FileLocks)
