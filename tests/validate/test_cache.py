"""The parse cache: a second load parses only the files that changed, and a bad cache is ignored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor.graph import sqldeps
from conveyor.project import CACHE_FILE, Project, cache, loader
from conveyor.validate import validate


class Parses:
    """Counts the YAML and SQL files a load parses (a cache hit parses nothing)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.yaml: list[str] = []
        self.sql: list[str] = []
        real_yaml, real_sql = loader.load_yaml, sqldeps.parse_sql

        def load_yaml(path: Path, display: str | None = None) -> Any:
            self.yaml.append(display or str(path))
            return real_yaml(path, display)

        def parse_sql(sql: str, dialect: str = "duckdb") -> Any:
            self.sql.append(sql)
            return real_sql(sql, dialect)

        monkeypatch.setattr(loader, "load_yaml", load_yaml)
        monkeypatch.setattr(cache, "load_yaml", load_yaml)  # a cached design composed again for a line
        monkeypatch.setattr(sqldeps, "parse_sql", parse_sql)  # the loader imports it on a cache miss

    def designs(self) -> list[str]:
        return [name for name in self.yaml if name != "conveyor.yaml"]

    def reset(self) -> None:
        self.yaml.clear()
        self.sql.clear()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    return Parses(monkeypatch)


@pytest.fixture
def root(case_project: Callable[[str], Path]) -> Path:
    return case_project("_base")


def test_a_second_run_parses_only_what_changed(root: Path, parses: Parses) -> None:
    first = validate(root, sources=False)
    assert first.problems == []
    assert len(parses.designs()) == 5 and len(parses.sql) == 3
    assert (root / CACHE_FILE).is_file()

    parses.reset()
    assert validate(root, sources=False).problems == []
    assert parses.designs() == [] and parses.sql == []

    sql = root / "schemas/mart/order_days.sql"
    sql.write_text(sql.read_text(encoding="utf-8").replace("count(*)", "count(1)"), encoding="utf-8")
    design = root / "schemas/shop/customers.yaml"
    design.write_text(design.read_text(encoding="utf-8") + "tags: [crm]\n", encoding="utf-8")
    parses.reset()
    project = Project.load(root)
    assert parses.designs() == ["schemas/shop/customers.yaml"]
    assert len(parses.sql) == 1 and "count(1)" in parses.sql[0]
    assert project.relations["shop.customers"].design.tags == ["crm"]
    assert project.relations["mart.order_days"].dependencies == ["shop.orders"]


def test_cached_designs_still_know_their_lines(root: Path, parses: Parses) -> None:
    path = root / "schemas/mart/customer_orders.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("[customer_id]", "[customer]"), encoding="utf-8")
    first = validate(root, sources=False)
    parses.reset()
    second = validate(root, sources=False)
    assert parses.designs() == ["schemas/mart/customer_orders.yaml"]  # composed again only for the line
    assert [p.render() for p in second.problems] == [p.render() for p in first.problems]
    assert [str(p.location) for p in second.problems] == ["schemas/mart/customer_orders.yaml:15"]


def test_broken_files_are_never_cached(root: Path, parses: Parses) -> None:
    validate(root, sources=False)
    (root / "schemas/mart/order_days.sql").write_text("SELECT FROM WHERE\n", encoding="utf-8")
    (root / "schemas/mart/big_customers.yaml").write_text("name: mart.big_customers\nkind: [\n", encoding="utf-8")
    for _ in range(2):
        parses.reset()
        codes = sorted(p.code for p in validate(root, sources=False).problems)
        assert codes == ["sql-parse", "yaml-syntax"]
        assert parses.designs() == ["schemas/mart/big_customers.yaml"]
        assert parses.sql == ["SELECT FROM WHERE\n"]


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json",
        b'{"key": 1}',
        b"[]",
        b"",
    ],
)
def test_a_corrupt_cache_is_ignored_and_replaced(root: Path, parses: Parses, content: bytes) -> None:
    validate(root, sources=False)
    (root / CACHE_FILE).write_bytes(content)
    parses.reset()
    assert validate(root, sources=False).problems == []
    assert len(parses.designs()) == 5 and len(parses.sql) == 3
    data = json.loads((root / CACHE_FILE).read_text(encoding="utf-8"))
    assert len(data["designs"]) == 5 and len(data["sql"]) == 3


def test_corrupt_entries_are_parsed_again(root: Path, parses: Parses) -> None:
    validate(root, sources=False)
    path = root / CACHE_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["designs"] = {key: {"name": 42} for key in data["designs"]}  # valid JSON, not a valid design
    data["sql"] = {key: {"refs": [["x"]], "names": None} for key in data["sql"]}
    path.write_text(json.dumps(data), encoding="utf-8")
    parses.reset()
    report = validate(root, sources=False)
    assert report.problems == []
    assert len(parses.designs()) == 5 and len(parses.sql) == 3


def test_the_key_holds_the_version_and_the_dialect(root: Path, parses: Parses, monkeypatch: pytest.MonkeyPatch) -> None:
    validate(root, sources=False)
    monkeypatch.setattr(conveyor, "__version__", "99.0.0")
    parses.reset()
    validate(root, sources=False)
    assert len(parses.designs()) == 5 and len(parses.sql) == 3
    # another default warehouse dialect: the SQL is read again, the designs are not
    settings = root / "conveyor.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8") + "  pg:\n    type: postgres\n    dsn: postgresql://x@h/db\n"
        "default_environment: pg\n",
        encoding="utf-8",
    )
    parses.reset()
    project = Project.load(root)
    assert project.dialect == "postgres"
    assert parses.designs() == [] and len(parses.sql) == 3


def test_load_writes_the_cache_only_where_conveyor_keeps_state(root: Path) -> None:
    Project.load(root)
    assert not (root / ".conveyor").exists()  # a first command (a dry run) leaves no trace
    Project.load(root, cache=False)
    assert not (root / ".conveyor").exists()
    (root / ".conveyor").mkdir()
    Project.load(root)
    assert (root / CACHE_FILE).is_file()


def test_no_cache_reads_and_writes_nothing(root: Path, parses: Parses) -> None:
    validate(root, sources=False)
    before = (root / CACHE_FILE).stat().st_mtime_ns
    parses.reset()
    validate(root, sources=False, cache=False)
    assert len(parses.designs()) == 5
    assert (root / CACHE_FILE).stat().st_mtime_ns == before


def test_an_unwritable_cache_is_skipped(root: Path) -> None:
    (root / ".conveyor").mkdir()
    (root / ".conveyor" / "cache").write_text("a file where the folder should be", encoding="utf-8")
    assert validate(root, sources=False).problems == []
