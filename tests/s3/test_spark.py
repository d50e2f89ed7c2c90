"""The ``spark`` job type with the lake on S3: Spark writes into a local staging folder, the
parts are uploaded into the bucket and committed there, identical to the ``arrow`` job type's.

One Spark application (a JVM: tens of seconds) extracts a small PostgreSQL table and a small
MariaDB table (decimals, zoned timestamps with microseconds, NULLs, unicode) into a bucket;
the ``arrow`` job type extracts the same tables into a local lake; every committed extract
must be identical, schema and values. Skipped without pyspark or Java (tests/spark/conftest.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from spark.conftest import assert_same_content, extract, my_db, my_run, pg_db, pg_run, write_project  # noqa: F401

from conveyor import api
from conveyor.lake.lake import Lake

pytestmark = [pytest.mark.spark, pytest.mark.postgres, pytest.mark.mysql, pytest.mark.slow]

PG_TABLE = """
CREATE TABLE t (id integer PRIMARY KEY, n numeric(20,6), tz timestamptz(6), ts timestamp(6), tx text, b boolean);
INSERT INTO t SELECT g, g * 1234.567891 - 50000,
  timestamptz '2024-01-01 12:00:00.654321+02' + g * interval '1 day 1 us',
  timestamp '2024-03-10 01:00:00.5' + g * interval '17 minutes 1.000001 seconds', repeat('ü€😀', g % 3) || g, g % 2 = 0
FROM generate_series(1, 300) AS g;
INSERT INTO t (id) VALUES (0);
"""
MY_TABLE = (
    "CREATE TABLE t (id int PRIMARY KEY, n decimal(20,6), tsp timestamp(6) NULL, dtm datetime(6), tx varchar(40)) "
    "DEFAULT CHARSET = utf8mb4"
)
MY_ROWS = (
    "INSERT INTO t VALUES (0, NULL, NULL, NULL, NULL), (1, -99999999999999.999999, '2024-01-01 10:00:00.000001', "
    "'2024-03-10 02:30:00.999999', 'ünïcødé 😀'), (2, 0.000001, '2038-01-19 03:14:07.999999', '1000-01-01', '')"
)
DESIGNS = {
    "pg.t": {
        "source_table": "public.t",
        "columns": [
            {"name": n, "type": t}
            for n, t in [
                ("id", "integer"),
                ("n", "decimal(20,6)"),
                ("tz", "timestamptz"),
                ("ts", "timestamp"),
                ("tx", "text"),
                ("b", "boolean"),
            ]
        ],
        "extract": {"split_by": "id", "partitions": 2},
    },
}


def test_spark_extracts_into_an_s3_lake_exactly_as_arrow_into_a_folder(
    pg_db: str,  # noqa: F811 - the fixture imported above
    my_db: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    s3_lake: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg_run(pg_db)(PG_TABLE)
    my = my_run(my_db)
    my(MY_TABLE)
    my(MY_ROWS)
    designs = {
        **DESIGNS,
        "my.t": {
            "source_table": f"{my_db}.t",
            "columns": [
                {"name": n, "type": t}
                for n, t in [
                    ("id", "integer"),
                    ("n", "decimal(20,6)"),
                    ("tsp", "timestamptz"),
                    ("dtm", "timestamp"),
                    ("tx", "text"),
                ]
            ],
        },
    }
    sources = {"pg": {"type": "postgres", "dsn": "${PG_DSN}"}, "my": {"type": "mysql", "dsn": "${MY_DSN}"}}
    monkeypatch.setenv("PG_DSN", pg_db)
    monkeypatch.setenv("MY_DSN", f"mysql://root@127.0.0.1:3306/{my_db}")
    monkeypatch.setenv("CONVEYOR_SPARK_MASTER", "local[2]")
    arrow = write_project(tmp_path / "arrow", sources, designs, job_type="arrow")
    spark = write_project(tmp_path / "spark", sources, designs, job_type="spark")
    settings = yaml.safe_load((spark / "conveyor.yaml").read_text(encoding="utf-8"))
    settings["lake"]["path"] = s3_lake
    (spark / "conveyor.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")

    for root in (arrow, spark):
        outcome = extract(root)
        assert outcome.extract is not None
        failed = {r.relation: r.error for r in outcome.extract.results if r.status != "succeeded"}
        assert not failed, f"{root.name}: {failed}"
    assert not (spark / "lake").exists()
    for source, relation in (("pg", "pg.t"), ("my", "my.t")):
        local = Lake(api.open_project(arrow).lake_location).latest(source, relation)
        remote = Lake(api.open_project(spark).lake_location).latest(source, relation)
        assert local is not None and remote is not None
        # the local staging folder (Spark's files, the converted parts) is gone
        assert not [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"conveyor-{remote.extract_id}")]
        assert remote.job_type == "spark" and remote.location.startswith(f"{s3_lake}/data/{source}/{relation}/")
        assert remote.arrow_schema.equals(local.arrow_schema)
        assert_same_content(local.dataset().to_table(), remote.dataset().to_table(), "id")
        # what the bucket holds is what the manifest names, byte for byte
        assert remote.store is not None
        sizes = {o.key.rsplit("/", 1)[-1]: o.size for o in remote.store.objects(remote.key)}
        assert {p.path: p.bytes for p in remote.files} == {k: v for k, v in sizes.items() if k != "manifest.json"}
