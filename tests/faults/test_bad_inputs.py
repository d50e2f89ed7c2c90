"""The bad-input corpus: every way to break a project gets exit 2, one paragraph, and nothing written.

Each case (``tests/faults/bad_cases.py``) breaks a copy of a primed project (it has run once:
its lake, DuckDB warehouse and tracking store hold data) and runs one command. The lake, the
warehouse file, the tracking store (every file of the project but the parse caches) and, for
the PostgreSQL-warehouse cases, the warehouse database's tables are digested before and
after. Every case must:

- exit with code 2, in time (no hang);
- print exactly one error paragraph (``Error: ...``), no traceback, no "Internal error";
- name the problem (the case's fragment);
- leave everything as it was: no extract folder, no warehouse change, no run row.

All command lines run through ``forkcli.py`` (imports paid once), so the corpus takes seconds.
The tally (cases, exit 2, nothing written ...) is printed (``-s`` shows it) and written to
``bad-inputs.json`` in the run's temporary folder.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import badinput
from .bad_cases import CASES, PG_DSN_MARK
from .badinput import Case

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_warehouse() -> Iterator[str | None]:
    """A throw-away PostgreSQL database for the PostgreSQL-warehouse cases (None when PostgreSQL is down)."""
    try:
        import psycopg

        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=3)
    except Exception:
        yield None
        return
    name = f"conveyor_t_bad_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def _primed(folder: Path, base: str, pg_dsn: str | None) -> Path:
    """The base project of tests/cases, with data, run once (lake, warehouse, tracking store filled)."""
    root = folder / f"primed-{base}"
    shutil.copytree(badinput.BASE, root, ignore=shutil.ignore_patterns("upstream.sql"))
    badinput.build_upstream(root / "upstream.db")
    if base == "pg":
        assert pg_dsn is not None
        settings = (root / "conveyor.yaml").read_text()
        settings = settings.replace("  dev:\n    type: duckdb\n    dsn: warehouse/dev.duckdb\n", "")
        settings += f"  pg:\n    type: postgres\n    dsn: {pg_dsn}\n"
        (root / "conveyor.yaml").write_text(settings.replace("environments:\n", "environments:\n", 1))
    done = badinput.conveyor(root, "run", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, pg_warehouse: str | None) -> dict[str, dict[str, object]]:
    """Every case run: name -> its result, with the digests before and after."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    bases = {"sqlite": _primed(folder, "sqlite", None)}
    if pg_warehouse is not None:
        bases["pg"] = _primed(folder, "pg", pg_warehouse)
    prepared: list[tuple[Case, Path, dict[str, str]]] = []
    for case in CASES:
        if case.base not in bases:
            continue
        root = folder / "cases" / case.name
        shutil.copytree(bases[case.base], root, symlinks=True)
        if case.from_case:
            badinput.lay_case(root, case.from_case)
        files = {
            k: v.replace(PG_DSN_MARK, pg_warehouse or "") if isinstance(v, str) else v for k, v in case.files.items()
        }
        badinput.write(root, files)
        if case.setup is not None:
            case.setup(root)
        prepared.append((case, root, {}))
    commands = []
    for case, root, before in prepared:
        before.update(badinput.tree_digest(root))
        env = {k: v.replace(PG_DSN_MARK, pg_warehouse or "") for k, v in case.env.items()}
        commands.append({"root": str(root), "args": list(case.command), "env": env, "timeout": case.timeout})
    local = [(p, c) for p, c in zip(prepared, commands, strict=True) if p[0].base != "pg"]
    ran = dict(zip([p[0].name for p, _ in local], badinput.forked([c for _, c in local]), strict=True))
    pg_changed: dict[str, list[str]] = {}
    for (case, _, _), command in zip(prepared, commands, strict=True):
        if case.base == "pg":  # one at a time: each case's own changes to the shared database
            assert pg_warehouse is not None
            pg_before = badinput.pg_digest(pg_warehouse)
            ran[case.name] = badinput.forked([command])[0]
            pg_changed[case.name] = badinput.diff(pg_before, badinput.pg_digest(pg_warehouse))
    results: dict[str, dict[str, object]] = {}
    for case, root, before in prepared:
        changed = badinput.diff(before, badinput.tree_digest(root)) + pg_changed.get(case.name, [])
        results[case.name] = {**ran[case.name], "changed": changed}
    _tally(results, folder)
    return results


def _verdict(case: Case, result: dict[str, object]) -> list[str]:
    """Everything wrong with a case's outcome (empty: it passed)."""
    out = str(result["out"])
    changed: list[str] = list(result["changed"])  # type: ignore[call-overload]
    wrong = []
    if result["code"] != (1 if case.records else 2):
        wrong.append(f"exit code {result['code']}, not {1 if case.records else 2}")
    if "Traceback" in out or "Internal error" in out:
        wrong.append("a traceback or an internal error")
    shown = badinput.paragraphs(out)
    if len(shown) != 1 or not (case.records or badinput.error_text(out).startswith("Error:")):
        wrong.append(f"{len(shown)} error paragraphs (or output before the error)")
    if case.expect.lower() not in out.lower():
        wrong.append(f"does not say {case.expect!r}")
    if case.records:  # the failed run is recorded by design (and its results file); nothing else may change
        recorded = (".conveyor/tracking.db", ".conveyor/run_results.json", ".conveyor/runs/")
        changed = [line for line in changed if not line.startswith(recorded)]
    if changed:
        wrong.append("wrote: " + "; ".join(changed[:5]))
    return wrong


def _tally(results: dict[str, dict[str, object]], folder: Path) -> None:
    by_name = {case.name: case for case in CASES}
    tally = {
        "cases": len(results),
        "exit_2": sum(1 for r in results.values() if r["code"] == 2),
        "pipeline_failures_recorded": sum(1 for name in results if by_name[name].records),
        "nothing_written": sum(1 for r in results.values() if not r["changed"]),
        "exit_2_and_nothing_written": sum(1 for r in results.values() if r["code"] == 2 and not r["changed"]),
        "passed": sum(1 for name, r in results.items() if not _verdict(by_name[name], r)),
    }
    print("\nbad-input corpus:", json.dumps(tally))
    (folder / "bad-inputs.json").write_text(json.dumps(tally, indent=2) + "\n")


def test_the_corpus_is_large_and_named_uniquely() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 110


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case: Case, outcomes: dict[str, dict[str, object]]) -> None:
    if case.name not in outcomes:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    result = outcomes[case.name]
    wrong = _verdict(case, result)
    assert not wrong, f"{case.name} ({' '.join(case.command)}): {'; '.join(wrong)}\n{result['out']}"
