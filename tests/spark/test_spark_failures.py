"""Failing Spark jobs are caught per table, recorded with their error, and stop nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from conveyor.extract import jobs as jobs_module
from conveyor.lake.lake import Lake

from .conftest import extract, extract_attempts, extract_state, my_run, pg_run, result_of, write_project

pytestmark = [pytest.mark.spark, pytest.mark.postgres, pytest.mark.mysql, pytest.mark.slow]


def test_failures_are_per_table_and_recorded(
    pg_db: str, my_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = pg_run(pg_db)
    pg(
        "CREATE TABLE good (id integer PRIMARY KEY, v text);"
        "INSERT INTO good SELECT g, 'v' || g FROM generate_series(1, 10) g;"
        "CREATE TABLE cond (id integer); INSERT INTO cond VALUES (1);"
        "CREATE TABLE url (id integer); INSERT INTO url VALUES (1);"
    )
    my = my_run(my_db)
    my("CREATE TABLE flags (id int, f tinyint(1))")
    my("INSERT INTO flags VALUES (1, 0), (2, 1), (3, 2)")
    one = [{"name": "id", "type": "integer"}]
    designs: dict[str, dict[str, Any]] = {
        "pg.good": {"source_table": "public.good", "columns": [*one, {"name": "v", "type": "text"}]},
        # the condition is SQL the upstream runs: it fails inside the Spark job
        "pg.cond": {"source_table": "public.cond", "columns": one, "extract": {"condition": "no_such_column > 0"}},
        "pg.url": {"source_table": "public.url", "columns": one},
        # 2 is not a boolean: Spark would read it as true, the conversion back refuses it
        "my.flags": {"source_table": f"{my_db}.flags", "columns": [*one, {"name": "f", "type": "boolean"}]},
    }
    sources = {"pg": {"type": "postgres", "dsn": "${PG_DSN}"}, "my": {"type": "mysql", "dsn": "${MY_DSN}"}}
    root = write_project(tmp_path / "p", sources, designs, job_type="spark", jobs=4)
    monkeypatch.setenv("PG_DSN", pg_db)
    monkeypatch.setenv("MY_DSN", f"mysql://root@127.0.0.1:3306/{my_db}")
    monkeypatch.setenv("CONVEYOR_SPARK_MASTER", "local[1]")
    # a JDBC URL the executors cannot reach (sources.<name>.spark.jdbc_url, once configured)
    real_job = jobs_module._job

    def job_with_bad_url(*args: Any) -> Any:
        job = real_job(*args)
        if job.relation == "pg.url":
            return dataclasses.replace(job, options={"spark": {"jdbc_url": "jdbc:postgresql://127.0.0.1:1/nowhere"}})
        return job

    monkeypatch.setattr(jobs_module, "_job", job_with_bad_url)

    outcome = extract(root)

    good = result_of(outcome, "pg.good")
    assert good.status == "succeeded" and good.rows == 10
    cond = result_of(outcome, "pg.cond")
    assert cond.status == "failed"
    assert 'the Spark job of "pg.cond" failed' in cond.error and "no_such_column" in cond.error
    url = result_of(outcome, "pg.url")
    assert url.status == "failed" and 'the Spark job of "pg.url" failed' in url.error
    assert "refused" in url.error.lower() or "connect" in url.error.lower()
    flags = result_of(outcome, "my.flags")
    assert flags.status == "failed" and "holds the value 2" in flags.error

    state = extract_state(root)
    assert state["pg.good"].status == "succeeded" and state["pg.good"].rows == 10
    for table, needle in [("pg.cond", "no_such_column"), ("pg.url", "pg.url"), ("my.flags", "value 2")]:
        assert state[table].status == "failed" and needle in state[table].error, state[table]
        assert state[table].last_success_extract_id is None
        (attempt,) = extract_attempts(root, table)
        assert attempt.status == "failed" and attempt.manifest_path is None
    lake = Lake(root / "lake")
    assert lake.latest("pg", "pg.good") is not None
    for source, table in [("pg", "pg.cond"), ("pg", "pg.url"), ("my", "my.flags")]:
        assert lake.latest(source, table) is None
        folder = lake.table_dir(source, table)
        assert not [p for p in folder.iterdir() if p.is_dir()], "a failed extract left its folder behind"
