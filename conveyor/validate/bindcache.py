"""The bind cache: what binding found for each query, so a second ``validate`` binds only what changed.

One JSON file, ``.conveyor/cache/bind.json``, beside the parse cache. An entry is keyed by a
hash of everything binding a relation depends on: its name, kind, query text and design (its
content, and its file's size and modification time for the lines problems point at), the
project's dialect and search path, the tables it reads outside the project, and, for every
relation it reads, the columns and types of what was made for it (or why nothing was). So a
change upstream that changes a relation's columns re-binds everything that reads it, and
nothing else.

The file as a whole carries a key naming the code that wrote it (Conveyor's version, the
DuckDB and sqlglot packages, and the binding modules' size and modification time); a cache
from other code, or one that is unreadable, is ignored. Writing replaces the file atomically
and keeps only the entries this run used (a run over a selection keeps the others' too). The
cache is read and written under the same conditions as the parse cache (``validate
--no-cache`` bypasses both).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from typing import Any

import conveyor
from conveyor.errors import Location
from conveyor.project import CACHE_FILE, Project, Relation
from conveyor.validate.problems import Problem

#: the file, relative to the project root
BIND_CACHE_FILE = CACHE_FILE.with_name("bind.json")
_FORMAT = 1


@dataclass
class Entry:
    """What binding one relation left behind."""

    table: list[tuple[str, str]] | None
    """The columns made for it (None: nothing was made)."""
    why: str | None
    """Why nothing was made."""
    state: str
    """``described`` (its output was compared), ``refused`` (an error was reported), ``quiet`` (it reads
    what the project check reported) or empty."""
    problems: list[Problem]


class BindCache:
    """Entries of the last run, and those of this run to write back."""

    def __init__(self, project: Project, *, enabled: bool):
        self.path = project.root / BIND_CACHE_FILE
        self.enabled = enabled
        self.common = ""
        self.old: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        if not enabled:
            return
        settings = project.settings.defaults
        self.common = json.dumps([_fingerprint(), project.dialect, settings.search_path])
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("key") == self.common and isinstance(data.get("entries"), dict):
            self.old = data["entries"]

    def key(self, relation: Relation, inputs: list[tuple[str, Any, str | None]]) -> str | None:
        """The hash of what binding ``relation`` depends on; None when the cache is off or the design unreadable."""
        if not self.enabled:
            return None
        try:
            # the design's content, and its file's size and time for the lines problems point at
            stat = os.stat(relation.doc.path)
            parts: list[Any] = [relation.name, relation.kind, relation.sql or "", relation.external, inputs]
            parts += [relation.doc.data, stat.st_size, stat.st_mtime_ns]
            text = json.dumps(parts)
        except (OSError, TypeError, ValueError):
            return None
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()

    def get(self, key: str | None) -> Entry | None:
        raw = self.old.get(key) if key is not None else None
        if not isinstance(raw, dict):
            return None
        try:
            table = raw["table"]
            entry = Entry(
                None if table is None else [(str(n), str(t)) for n, t in table],
                raw["why"],
                str(raw["state"]),
                [_problem(p) for p in raw["problems"]],
            )
        except (KeyError, TypeError, ValueError):
            return None
        self.new[str(key)] = raw
        return entry

    def put(self, key: str | None, entry: Entry) -> None:
        if key is None:
            return
        self.new[key] = {
            "table": entry.table,
            "why": entry.why,
            "state": entry.state,
            "problems": [p.to_json() for p in entry.problems],
        }

    def save(self, *, prune: bool = True) -> None:
        """Write this run's entries when anything changed (atomically; a failure to write is ignored).

        Args:
            prune: keep only this run's entries (a run over the whole project); otherwise keep
                the earlier entries too.
        """
        if not self.enabled or self.new.keys() == self.old.keys():
            return
        if not prune:
            self.new = {**self.old, **self.new}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(json.dumps({"key": self.common, "entries": self.new}, separators=(",", ":")), "utf-8")
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)


def _problem(data: dict[str, Any]) -> Problem:
    where = None
    if data["file"] is not None:
        where = Location(data["file"], data["line"], data["column"])
    return Problem(
        code=data["code"],
        severity=data["severity"],
        message=data["message"],
        location=where,
        hint=data["hint"],
        relation=data["relation"],
        check=data["check"],
        details=dict(data["details"]),
    )


def _fingerprint() -> str:
    """Names the code whose results are cached: versions, and the binding modules' size and mtime."""
    import sqlglot

    modules = [
        "conveyor.design.types",
        *(f"conveyor.validate.{m}" for m in ("bind", "columns", "compiler", "typecompat")),
    ]
    files = [spec.origin if spec else None for spec in map(importlib.util.find_spec, [*modules, "duckdb"])]
    parts = [str(_FORMAT), conveyor.__version__, sqlglot.__version__]
    for file in files:
        try:
            stat = os.stat(str(file))
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
        except (OSError, TypeError):
            parts.append("?")
    return "|".join(parts)
