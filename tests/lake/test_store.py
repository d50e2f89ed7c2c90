"""The lake's stores: a local folder and an S3 bucket (moto on loopback) behave alike.

Every test runs against both. The S3 store reaches moto only through the AWS environment
variables the ``s3_bucket`` fixture sets (tests/lake/conftest.py).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.errors import LakeError
from conveyor.lake.parts import parquet_options
from conveyor.lake.store import LocalStore, S3Store, Store, open_store

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("amount", pa.decimal128(38, 10)),
        pa.field("price", pa.decimal128(15, 2)),
        pa.field("at", pa.timestamp("us", tz="Europe/Berlin")),
        pa.field("local_at", pa.timestamp("us")),
        pa.field("name", pa.string()),
    ]
)
PART = "data/src/shop.orders/20261207T060000000000Z-abc123/part-00000.parquet"
MANIFEST = "data/src/shop.orders/20261207T060000000000Z-abc123/manifest.json"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/env-a")


def rows_table(rows: list[tuple[object, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in SCHEMA]
    return pa.Table.from_arrays(
        [pa.array(list(c), f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
    )


def write_part(store: Store, key: str, table: pa.Table, *, row_group_rows: int = 1000) -> None:
    """A part as the lake writes one: a ParquetWriter streaming into the store."""
    with (
        store.open_output(key) as sink,
        pq.ParquetWriter(sink, table.schema, **parquet_options(table.schema, "zstd")) as writer,
    ):
        writer.write_table(table, row_group_size=row_group_rows)


def read_part(store: Store, key: str) -> pa.Table:
    with store.open_input(key) as source:
        return pq.read_table(source)


decimals = st.decimals(min_value=Decimal("-1e27"), max_value=Decimal("1e27"), places=10, allow_nan=False)
prices = st.decimals(min_value=Decimal("-9999999999999.99"), max_value=Decimal("9999999999999.99"), places=2)
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)).map(
    lambda d: d.astimezone(timezone(timedelta(hours=1)))
)
row = st.tuples(
    st.integers(-(2**63), 2**63 - 1),
    st.none() | decimals,
    st.none() | prices,
    st.none() | instants,
    st.none() | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.none() | st.text(max_size=20),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, max_size=40))
def test_a_part_reads_back_exactly(store: Store, rows: list[tuple[object, ...]]) -> None:
    table = rows_table(rows)
    write_part(store, PART, table, row_group_rows=7)
    back = read_part(store, PART)
    assert back.schema == SCHEMA  # the zone, the precision, the nullability
    assert back.equals(table)
    assert back.to_pylist() == table.to_pylist()  # decimals as Decimal, NULL as None
    filesystem, _base = store.arrow()
    dataset = ds.dataset([store.arrow_path(PART)], format="parquet", filesystem=filesystem)
    assert dataset.to_table().equals(table)


def test_part_then_manifest_then_list(store: Store) -> None:
    table = rows_table([(1, Decimal("0.0000000001"), Decimal("-0.01"), None, None, "Zoë"), (2, *[None] * 5)])
    write_part(store, PART, table)
    assert store.get(MANIFEST) is None
    manifest = json.dumps({"files": [PART.rsplit("/", 1)[1]]}).encode()
    assert store.put_new(MANIFEST, manifest)
    assert store.get(MANIFEST) == manifest
    listed = store.objects("data/src/shop.orders")
    assert [o.key for o in listed] == [MANIFEST, PART]
    assert listed[0].size == len(manifest) and listed[1].size > 0
    assert store.objects("data/src/shop.customers") == []
    assert [o.key for o in store.objects("data")] == [MANIFEST, PART]
    assert read_part(store, PART).equals(table)


def test_a_second_writer_of_one_manifest_is_refused(store: Store) -> None:
    assert store.put_new(MANIFEST, b"first")
    assert not store.put_new(MANIFEST, b"second")
    assert store.get(MANIFEST) == b"first"


def test_the_same_manifest_again_is_the_same_commit(s3_bucket: str) -> None:
    """A commit retried after a lost answer finds its own bytes: written, not refused."""
    store = open_store(f"s3://{s3_bucket}/lake")
    assert store.put_new(MANIFEST, b"same")
    assert store.put_new(MANIFEST, b"same")
    assert not store.put_new(MANIFEST, b"other")


def test_racing_writers_of_one_manifest_commit_exactly_once(store: Store) -> None:
    won: list[int] = []
    barrier = threading.Barrier(6)

    def commit(n: int) -> None:
        barrier.wait()
        if store.put_new(MANIFEST, f"writer {n}".encode()):
            won.append(n)

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert store.get(MANIFEST) == f"writer {won[0]}".encode()


def test_delete_manifest_then_parts(store: Store) -> None:
    second = PART.replace("part-00000", "part-00001")
    for key in (PART, second):
        write_part(store, key, rows_table([(1, None, None, None, None, "x")]))
    assert store.put_new(MANIFEST, b"{}")
    other = "data/src/shop.orders/20261208T060000000000Z-def456/manifest.json"
    assert store.put_new(other, b"{}")

    store.delete([MANIFEST])  # readers stop trusting the extract first
    assert store.get(MANIFEST) is None
    assert [o.key for o in store.objects("data/src/shop.orders")] == [PART, second, other]
    store.delete([PART, second, PART])  # a missing key is no error
    assert [o.key for o in store.objects("data/src/shop.orders")] == [other]


def test_environments_under_one_bucket_share_nothing(s3_bucket: str) -> None:
    one, two = open_store(f"s3://{s3_bucket}/prod"), open_store(f"s3://{s3_bucket}/dev")
    assert one.put_new(MANIFEST, b"prod")
    assert two.put_new(MANIFEST, b"dev")  # the same key under another prefix
    assert (one.get(MANIFEST), two.get(MANIFEST)) == (b"prod", b"dev")
    assert [o.key for o in two.objects("data")] == [MANIFEST]
    assert [o.key for o in open_store(f"s3://{s3_bucket}").objects("")] == [f"dev/{MANIFEST}", f"prod/{MANIFEST}"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/."])
def test_keys_cannot_leave_the_lake(store: Store, key: str) -> None:
    with pytest.raises(LakeError, match="refusing the lake key"):
        store.put_new(key, b"x")


@pytest.mark.parametrize(
    "location",
    ["s3://AKIAEXAMPLE:hunter2secret@bucket/prefix", "s3:///prefix", "s3://bucket/p?x=1", "gs://bucket/x"],
)
def test_bad_locations_are_refused_without_secrets(location: str) -> None:
    with pytest.raises(LakeError) as raised:
        open_store(location)
    assert "hunter2secret" not in str(raised.value)


def test_a_missing_bucket_is_one_paragraph_without_secrets(s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}-missing/lake")
    assert isinstance(store, S3Store)
    with pytest.raises(LakeError) as raised:
        store.put_new(MANIFEST, b"{}")
    message = str(raised.value)
    assert f"s3://{s3_bucket}-missing/lake/{MANIFEST}" in message
    assert "conveyor-test-secret" not in message
    assert "Create the bucket" in (raised.value.hint or "")


def test_an_endpoint_that_refuses_connections(monkeypatch: pytest.MonkeyPatch, s3_bucket: str) -> None:
    from testkit.s3 import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store = open_store(f"s3://{s3_bucket}/lake")
    with pytest.raises(LakeError) as raised:
        store.objects("data")
    assert "conveyor-test-secret" not in str(raised.value)


def test_duckdb_scans_parts_through_the_store_exactly(store: Store) -> None:
    """How a DuckDB load reads an object-store lake without httpfs: an Arrow dataset over the store."""
    import duckdb

    table = rows_table(
        [
            (
                1,
                Decimal("-12345678901234567.0123456789"),
                Decimal("0.01"),
                datetime(2024, 1, 2, 3, 4, 5, 6, UTC),
                None,
                "a",
            ),
            (2, None, None, None, datetime(1, 1, 1), None),
        ]
    )
    keys = [PART, PART.replace("part-00000", "part-00001")]
    for key in keys:
        write_part(store, key, table)
    filesystem, _base = store.arrow()
    dataset = ds.dataset([store.arrow_path(k) for k in keys], format="parquet", filesystem=filesystem, schema=SCHEMA)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("extract_parts", dataset)
    con.execute('CREATE TABLE t AS SELECT id, amount, price, "at", local_at, name FROM extract_parts')
    assert con.sql('SELECT typeof(amount), typeof(price), typeof("at") FROM t LIMIT 1').fetchall()[0] == (
        "DECIMAL(38,10)",
        "DECIMAL(15,2)",
        "TIMESTAMP WITH TIME ZONE",
    )
    got = con.sql("SELECT * FROM t ORDER BY id").to_arrow_table()
    want = pa.concat_tables([table, table]).sort_by([("id", "ascending")])
    assert got.column("amount").to_pylist() == want.column("amount").to_pylist()
    assert got.column("price").to_pylist() == want.column("price").to_pylist()
    assert [v and v.astimezone(UTC) for v in got.column("at").to_pylist()] == [
        v and v.astimezone(UTC) for v in want.column("at").to_pylist()
    ]
    assert got.column("local_at").to_pylist() == want.column("local_at").to_pylist()
    assert got.column("name").to_pylist() == want.column("name").to_pylist()


WRITER = """
import sys
from conveyor.lake.store import open_store

store = open_store(sys.argv[1])
with store.open_output(sys.argv[2]) as sink:
    chunk = bytes(range(256)) * 4096 * 8  # 8 MiB: past the first multipart part
    sink.write(chunk)
    sink.flush()
    print("written", flush=True)
    sys.stdin.readline()  # killed here, mid-upload
    sink.write(chunk)
"""


def test_a_writer_killed_mid_upload_leaves_no_object(s3_bucket: str, tmp_path: Path) -> None:
    """A part whose multipart upload never completes is not an object: nothing to list or read."""
    import os
    import signal
    import subprocess
    import sys

    location = f"s3://{s3_bucket}/lake"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(script), location, PART],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            text=True,
        )

    process = start()
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "written"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    store = open_store(location)
    assert store.objects("data") == []
    assert store.get(PART) is None

    finished = start()  # the same writer, let through: its part is there, whole
    out, _ = finished.communicate("\n", timeout=60)
    assert finished.returncode == 0, out
    assert [(o.key, o.size) for o in store.objects("data")] == [(PART, 2 * 8 * 2**20)]


def test_the_part_writer_streams_parts_and_a_manifest_commits_them(store: Store) -> None:
    """The lake's own PartWriter and Manifest over a store: parts roll over, checksums are the stored bytes'."""
    import hashlib

    from conveyor.lake.manifest import Manifest
    from conveyor.lake.parts import PartWriter

    table = rows_table([(n, Decimal(n).scaleb(-10), None, None, None, f"n{n}é") for n in range(2500)])
    folder = PART.rsplit("/", 1)[0]
    writer = PartWriter(None, SCHEMA, part_rows=1000, row_group_rows=300, store=store, key=folder)
    for batch in table.to_batches(max_chunksize=700):
        writer.write(batch)
    parts = writer.close()
    assert [(p.path, p.rows) for p in parts] == [
        ("part-00000.parquet", 1000),
        ("part-00001.parquet", 1000),
        ("part-00002.parquet", 500),
    ]
    for part in parts:
        stored = store.get(f"{folder}/{part.path}")
        assert stored is not None and len(stored) == part.bytes
        assert hashlib.sha256(stored).hexdigest() == part.sha256

    now = datetime.now(UTC).isoformat()
    manifest = Manifest(
        folder.rsplit("/", 1)[1], "src", "main.orders", "shop.orders", parts, SCHEMA, "SELECT", now, now
    )
    body = json.dumps(manifest.to_json()).encode()
    assert store.put_new(MANIFEST, body)
    assert not store.put_new(MANIFEST, body.replace(b'"rows"', b'"rows" ', 1))  # another writer: refused

    committed = store.get(MANIFEST)
    assert committed is not None
    back = Manifest.from_json(json.loads(committed), Path(folder))
    assert back.arrow_schema == SCHEMA and back.files == parts and back.rows == 2500
    filesystem, _base = store.arrow()
    paths = [store.arrow_path(f"{folder}/{p.path}") for p in back.files]
    assert ds.dataset(paths, format="parquet", filesystem=filesystem).to_table().equals(table)
