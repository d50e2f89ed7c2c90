"""The machinery of the bad-input corpus (``test_bad_inputs.py``): cases, primed projects, digests.

A :class:`Case` breaks a copy of a *primed* project (one that has run once, so its lake,
warehouse and tracking store hold data) and runs one command line on it. Every case must
exit 2 with one paragraph naming the problem, and leave the lake, the warehouse and the
tracking store exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FORKCLI = Path(__file__).with_name("forkcli.py")
CASES = Path(__file__).resolve().parents[1] / "cases"
BASE = CASES / "_base"

#: a file's new content (text or bytes), or None to delete it
Files = Mapping[str, "str | bytes | None"]


@dataclass(frozen=True)
class Case:
    """One bad input: how the project is broken, the command, and what the one paragraph must say."""

    name: str
    command: tuple[str, ...]
    expect: str
    """A fragment of the output (case-insensitive): the problem's code or words of its first line."""
    files: Files = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    """Anything files cannot say (a folder where a file should be, an absolute path ...)."""
    base: str = "sqlite"
    """Which primed project it breaks: ``sqlite`` (DuckDB warehouse) or ``pg`` (a PostgreSQL warehouse)."""
    from_case: str | None = None
    """A broken project of tests/cases/ laid over the base (the validate corpus, reused)."""
    timeout: int = 20
    records: bool = False
    """A pipeline's failure, recorded and notified by design (exit 1, one failed run row, but nothing extracted
    or loaded: the lake and the warehouse are unchanged)."""


def lay_case(root: Path, name: str) -> None:
    """Lay tests/cases/<name>/ over a project (its expected.yaml says which base files to delete)."""
    import yaml

    folder = CASES / name
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "expected.yaml":
            target = root / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    spec = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
    for relative in spec.get("delete") or []:
        (root / relative).unlink()


def write(root: Path, files: Files) -> None:
    for relative, content in files.items():
        path = root / relative
        if content is None:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        elif isinstance(content, bytes):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")


def build_upstream(path: Path) -> None:
    con = sqlite3.connect(path)
    try:
        con.executescript((BASE / "upstream.sql").read_text(encoding="utf-8"))
        con.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
            [(1, "Ada", "ada@example.com", 1, "2024-01-02T03:04:05+00:00"), (2, "Bo", None, 0, None)],
        )
        con.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
            [(10, 1, 10.5, "x", 1, "2024-02-01T10:00:00+00:00"), (11, 2, 2.25, None, 0, "2024-02-02T10:00:00+00:00")],
        )
        con.commit()
    finally:
        con.close()


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(extra or {})}
    env.pop("CONVEYOR_PROJECT", None)
    return env


def conveyor(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One command line in a subprocess (to prime a project)."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "-p", str(root), *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def forked(commands: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
    """Run command lines (``{"root", "args", "env", "cwd", "timeout"}``) through forkcli.py."""
    request = json.dumps({"root": "", "env": {}, "commands": list(commands)})
    done = subprocess.run(
        [sys.executable, str(FORKCLI)], input=request, env=cli_env(), capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# -- what must not change --------------------------------------------------------------------

#: not the lake, the warehouse or the tracking store: the parse and bind caches
IGNORED = (".conveyor/cache",)


def tree_digest(root: Path, ignored: Sequence[str] = IGNORED) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``root`` (folders as ``dir``), but the caches."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        relative = here.relative_to(root).as_posix()
        if any(relative == i or relative.startswith(i + "/") for i in ignored):
            dirnames[:] = []
            continue
        found[relative + "/"] = "dir"
        for name in filenames:
            path = here / name
            key = (here.relative_to(root) / name).as_posix()
            try:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "special"
            except OSError as exc:
                found[key] = f"unreadable {exc.errno}"
    return found


def pg_digest(dsn: str) -> dict[str, str]:
    """Every user table and view of a PostgreSQL database -> sha256 of its sorted rows."""
    import psycopg

    found: dict[str, str] = {}
    with psycopg.connect(dsn, autocommit=True) as con:
        names = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        for schema, table in names:
            rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            found[f"{schema}.{table}"] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
        schemas = con.execute("SELECT nspname FROM pg_namespace ORDER BY 1").fetchall()
        found["-schemas"] = repr(schemas)
    return found


def diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What changed between two digests, as short lines."""
    keys = sorted(set(before) | set(after))
    return [
        f"{k}: {before.get(k, '-')[:12]} -> {after.get(k, '-')[:12]}" for k in keys if before.get(k) != after.get(k)
    ]


def paragraphs(output: str) -> list[str]:
    """The error paragraphs of an output: each starts at a line beginning ``Error:`` or ``Internal error:``."""
    return [line for line in output.splitlines() if line.startswith(("Error:", "Internal error:"))]


_USAGE = re.compile(r"\AUsage: .*\nTry '.*' for help\.\n\n(?=Error: )")


def error_text(output: str) -> str:
    """The output from its error on: click's usage lines before a usage error are its standard form."""
    return _USAGE.sub("", output.lstrip())
