"""The validate oracle, SQL half: plain ``validate`` reports an error exactly when the real build fails.

Two sources of projects, each checked with ``validate`` (no warehouse, no upstream
connection) and with a real extract from SQLite plus a build into DuckDB:

* every case of the broken-project corpus (``tests/cases``) whose problem concerns SQL:
  output columns, statements that do not compile or bind, and dependencies;
* the bundled example ``examples/shop`` with one query changed by a seeded random mutation:
  a column, table, function or output name renamed to one that does not exist, an
  identifier's case changed, a comment added.

One difference is by design and asserted as such: ``output-column-type`` (a column of another
kind than its design's type) is an error for validate, while a DuckDB load converts what it
can on insert (a count into a text column) and fails only on values that do not convert.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from conveyor import api
from conveyor.errors import ConveyorError
from conveyor.validate import validate

from .conftest import case_names, spec_of

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop"
#: codes of the SQL half: output columns, compiling or binding, dependencies
SQL_CODES = {
    "bind-failed",
    "compile-failed",
    "output-column-missing",
    "output-column-extra",
    "output-column-duplicate",
    "output-column-order",
    "output-column-type",
    "output-column-narrowing",
    "sql-parse",
    "missing-sql",
    "sql-without-design",
    "missing-dependency",
    "external-dependency",
    "cycle",
    "unneeded-dependency",
    "redundant-dependency",
}
#: validate is stricter than a load here (see the module docstring)
STRICTER = {"output-column-type"}
SQL_CASES = [name for name in case_names() if spec_of(name)["expected"]["code"] in SQL_CODES]
#: CONVEYOR_ORACLE_MUTATIONS=200 runs more mutations of the example
MUTATIONS = int(os.environ.get("CONVEYOR_ORACLE_MUTATIONS", "16"))


def _builds(root: Path, action: Callable[[api.Project], api.Outcome]) -> tuple[bool, str]:
    """Whether the real command succeeds, and why not."""
    try:
        outcome = action(api.open_project(root))
    except ConveyorError as exc:
        return False, exc.render()
    errors = outcome.build.errors if outcome.build else {}
    return outcome.ok, "; ".join(f"{k}: {v}" for k, v in errors.items()) or "; ".join(outcome.notes)


def test_the_sql_cases_are_many() -> None:
    assert len(SQL_CASES) >= 20, SQL_CASES


@pytest.mark.parametrize("name", SQL_CASES)
def test_a_case_fails_to_build_exactly_when_validate_says_so(name: str, case_project: Callable[[str], Path]) -> None:
    root = case_project(name)
    report = validate(root, spec_of(name).get("selection") or (), sources=False)
    built, why = _builds(root, lambda project: api.run(project))
    codes = {p.code for p in report.errors}
    shown = [p.render() for p in report.problems]
    if built and codes and codes <= STRICTER:
        return  # validate is stricter on purpose
    assert report.ok == built, f"validate: {shown}; build: {'ok' if built else why}"


# ------------------------------------------------------------------------------ mutations of the example


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with a small generated upstream, extracted once into its lake."""
    root = tmp_path_factory.mktemp("oracle") / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("lake", "warehouse", ".conveyor", "upstream"))
    spec = importlib.util.spec_from_file_location("oracle_shop_generate", root / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(root / "upstream" / "shop.db", scale=0.02)
    assert api.run(api.open_project(root)).ok
    assert validate(root, sources=False).problems == []
    return root


def _mutations(seed: int, count: int) -> list[tuple[str, str, str]]:
    """(relation file, kind, new text) for ``count`` mutations of the example's queries."""
    rng = random.Random(seed)
    files = sorted(EXAMPLE.glob("schemas/*/*.sql"))
    found: list[tuple[str, str, str]] = []
    while len(found) < count:
        path = rng.choice(files)
        kind = rng.choice(["column", "table", "function", "alias", "case", "comment"])
        text = _mutate(path.read_text(encoding="utf-8"), kind, rng)
        if text is not None:
            found.append((str(path.relative_to(EXAMPLE)), kind, text))
    return found


def _mutate(sql: str, kind: str, rng: random.Random) -> str | None:
    """The query with one change of ``kind`` made at a random place (None: nothing of that kind)."""
    if kind == "comment":
        lines = sql.splitlines(keepends=True)
        at = rng.randrange(len(lines) + 1)
        return "".join([*lines[:at], "-- a note\n", *lines[at:]])
    tree = sqlglot.parse_one(sql, read="duckdb")
    places: list[dict[str, int]] = []
    if kind in ("column", "case"):
        places = [c.this.meta for c in tree.find_all(exp.Column) if not c.this.quoted]
    elif kind == "table":
        places = [t.this.meta for t in tree.find_all(exp.Table) if isinstance(t.this, exp.Identifier)]
    elif kind == "function":
        places = [f.meta for f in tree.find_all(exp.Func) if "start" in f.meta and not isinstance(f, exp.Cast)]
    elif kind == "alias":
        aliases = [a.args.get("alias") for a in tree.find_all(exp.Alias)]
        places = [a.meta for a in aliases if isinstance(a, exp.Identifier)]
    places = [p for p in places if "start" in p and sql[p["start"] : p["end"] + 1].isidentifier()]
    if not places:
        return None
    place = rng.choice(places)
    start, end = place["start"], place["end"] + 1
    word = sql[start:end]
    new = word.upper() if kind == "case" else word + "_zz"
    if new == word:
        return None
    return sql[:start] + new + sql[end:]


@pytest.mark.parametrize(("file", "kind", "text"), _mutations(seed=10, count=MUTATIONS))
def test_a_mutated_example_fails_to_build_exactly_when_validate_says_so(
    shop: Path, file: str, kind: str, text: str
) -> None:
    path = shop / file
    original = path.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    try:
        report = validate(shop, sources=False)
        built, why = _builds(shop, lambda project: api.load(project))
    finally:
        path.write_text(original, encoding="utf-8")
    shown = [p.render() for p in report.problems]
    assert report.ok == built, f"{kind} in {file}: validate: {shown}; build: {'ok' if built else why}"
