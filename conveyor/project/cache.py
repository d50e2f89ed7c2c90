"""The parse cache (``.conveyor/cache/project.json``): parsed designs and the tables each query reads,
keyed by the hash of each file's content and of the code that parsed it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

import conveyor
from conveyor.config.yamlfile import YamlDoc, load_yaml
from conveyor.errors import (
    ConveyorError,
)
from conveyor.graph.refs import TableRef

#: the parse cache, relative to the project root (see :class:`ParseCache`)
CACHE_FILE = Path(".conveyor") / "cache" / "project.json"


def content_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _code_fingerprint() -> str:
    """Identifies the code that produced cached results: versions plus the parsing modules' stat."""
    import importlib.metadata
    import importlib.util

    # sqlglot's version from its metadata: importing sqlglot costs 0.3 s a warm load does not need
    parts = [str(ParseCache.FORMAT), conveyor.__version__, importlib.metadata.version("sqlglot"), yaml.__version__]
    for name in ("conveyor.design.models", "conveyor.design.types", "conveyor.graph.sqldeps", "conveyor.graph.refs"):
        spec = importlib.util.find_spec(name)
        try:
            stat = os.stat(str(spec.origin if spec else None))
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
        except (OSError, TypeError):
            parts.append("?")
    here = Path(__file__).parent
    for file in (here / "cache.py", here / "loader.py", here / "relation.py"):
        try:
            stat = os.stat(file)
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            parts.append("?")
    return "|".join(parts)


class CachedDoc(YamlDoc):
    """A design taken from the parse cache: its YAML node tree (for line numbers) is built only when asked."""

    def __init__(self, path: Path, data: Any, display: str):
        self.path = path
        self.display = display
        self.data = data
        self._node: yaml.Node | None = None
        self._composed = False

    @property
    def node(self) -> yaml.Node | None:
        if not self._composed:
            self._composed = True
            try:
                self._node = load_yaml(self.path, self.display).node
            except (ConveyorError, OSError):
                self._node = None
        return self._node

    @node.setter
    def node(self, value: yaml.Node | None) -> None:
        self._node, self._composed = value, True


class ParseCache:
    """Parsed designs and SQL facts of earlier loads, keyed by the hash of each file's content.

    One JSON file, ``.conveyor/cache/project.json``: a key naming the code that wrote it
    (Conveyor, sqlglot and PyYAML versions, plus the parsing modules), the validated design
    data by content hash, and each query's table references and output names by dialect and
    content hash. Only files that loaded without problems are cached. A cache that is missing,
    unreadable, corrupt or from other code is ignored; one that cannot be written is skipped.
    Writing replaces the file atomically and keeps only the entries this load used.
    """

    FORMAT = 1

    def __init__(self, root: Path, mode: bool | None):
        self.path = root / CACHE_FILE
        self.enabled = mode is not False
        self.create = mode is True
        self.key = ""
        self.old_designs: dict[str, Any] = {}
        self.old_sql: dict[str, Any] = {}
        self.designs: dict[str, Any] = {}
        self.sql_facts: dict[str, Any] = {}
        self.dirty = False
        if self.enabled:
            self.key = _code_fingerprint()
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("key") != self.key:
            return
        designs, sql = data.get("designs"), data.get("sql")
        if isinstance(designs, dict) and isinstance(sql, dict):
            self.old_designs, self.old_sql = designs, sql

    def design(self, digest: str) -> dict[str, Any] | None:
        data = self.old_designs.get(digest)
        if not isinstance(data, dict):
            return None
        self.designs[digest] = data
        return data

    def put_design(self, digest: str, data: Any, path: Path) -> None:
        if not self.enabled:
            return
        try:
            if json.loads(json.dumps(data)) != data:
                return  # YAML values JSON cannot hold exactly (dates, non-string keys): not cached
            if content_digest(path.read_bytes()) != digest:
                return  # the file changed while it was read
        except (TypeError, ValueError, OSError):
            return
        self.designs[digest] = data
        self.dirty = True

    def sql(self, dialect: str, digest: str) -> tuple[list[TableRef], list[str] | None] | None:
        entry = self.old_sql.get(f"{dialect}:{digest}")
        if not isinstance(entry, dict):
            return None
        try:
            refs = [TableRef(s, n, c, line, col) for s, n, c, line, col in entry["refs"]]
            names = entry["names"]
            if names is not None and not all(isinstance(n, str) for n in names):
                return None
        except (KeyError, TypeError, ValueError):
            return None
        self.sql_facts[f"{dialect}:{digest}"] = entry
        return refs, names

    def put_sql(self, dialect: str, digest: str, refs: list[TableRef], names: list[str] | None) -> None:
        if not self.enabled:
            return
        rows = [[r.schema, r.name, r.catalog, r.line, r.column] for r in refs]
        self.sql_facts[f"{dialect}:{digest}"] = {"refs": rows, "names": names}
        self.dirty = True

    def save(self) -> None:
        """Write the entries this load used, if anything changed and the cache may be written."""
        if not self.enabled:
            return
        unchanged = len(self.designs) == len(self.old_designs) and len(self.sql_facts) == len(self.old_sql)
        if not self.dirty and unchanged:
            return
        if not self.create and not self.path.parent.parent.is_dir():
            return  # no .conveyor/ yet: a command that writes nothing else leaves no trace
        data = {"key": self.key, "designs": self.designs, "sql": self.sql_facts}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
