"""A dbt project on disk, read as data: ``dbt_project.yml``, model files, schema files, sources.

Nothing here decides what converts; it only finds things and remembers where each one was
written (file:line), so the report can point at it. YAML is read with Conveyor's loader:
a file that is not valid YAML is a :class:`~conveyor.errors.ConfigError` with its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.config.yamlfile import Loc, YamlDoc, load_yaml
from conveyor.errors import ConfigError, Location, UserError

#: config keys Conveyor carries over
SUPPORTED_CONFIG = frozenset({"materialized", "schema", "tags", "alias", "enabled"})
#: config keys that change nothing Conveyor builds (documentation, access, incremental strategy)
IGNORED_CONFIG = frozenset(
    {"docs", "meta", "persist_docs", "group", "access", "full_refresh", "unique_key", "on_schema_change",
     "incremental_strategy", "description"}
)  # fmt: skip


@dataclass(frozen=True)
class Spot:
    """Where something is written: a file relative to the dbt project, and a 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass
class Entry:
    """One mapping in a YAML file (a model's or a source table's properties) and where it is."""

    data: dict[str, Any]
    doc: YamlDoc
    loc: Loc

    def spot(self, *more: str | int) -> Spot:
        return Spot(self.doc.display, self.doc.line(self.loc + more))


@dataclass
class ModelFile:
    """One ``models/**/*.sql`` file."""

    name: str
    file: str
    folders: tuple[str, ...]
    text: str


@dataclass
class SourceTable:
    """One table of a dbt source."""

    source: str
    name: str
    upstream_schema: str
    identifier: str
    entry: Entry
    source_entry: Entry


@dataclass
class ConfigValue:
    """A config value and where it was set."""

    value: Any
    spot: Spot


@dataclass
class DbtProject:
    """Everything read from a dbt project folder."""

    root: Path
    name: str
    doc: YamlDoc
    models: dict[str, ModelFile] = field(default_factory=dict)
    properties: dict[str, Entry] = field(default_factory=dict)
    sources: list[SourceTable] = field(default_factory=list)
    singular_tests: list[tuple[str, str]] = field(default_factory=list)
    """(file, text) of every ``tests/**/*.sql``."""
    others: list[tuple[Spot, str, str]] = field(default_factory=list)
    """(where, what, why) of everything found that is not converted at all: seeds, snapshots, hooks."""

    def model_config(self, model: ModelFile) -> dict[str, ConfigValue]:
        """The configs ``dbt_project.yml`` gives a model (its folders', then its own), tags accumulated."""
        found: dict[str, ConfigValue] = {}
        block = self.doc.data.get("models")
        loc: Loc = ("models",)
        path = [self.name, *model.folders, model.name]
        while isinstance(block, dict):
            for key, value in block.items():
                config = str(key).removeprefix("+")
                if str(key).startswith("+") or not isinstance(value, dict):  # old style: config without +
                    spot = Spot(self.doc.display, self.doc.line((*loc, key)))
                    if config == "tags" and "tags" in found:
                        value = _tags(found["tags"].value) + _tags(value)
                    found[config] = ConfigValue(value, spot)
            if not path:
                break
            part = path.pop(0)
            block = block.get(part)
            loc = (*loc, part)
        return found


def _tags(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _paths(data: dict[str, Any], key: str, legacy: str | None, default: str) -> list[str]:
    value = data.get(key, data.get(legacy) if legacy else None) or [default]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def read_project(root: Path) -> DbtProject:
    """Read the dbt project in ``root``; a folder without ``dbt_project.yml`` is bad input."""
    if not (root / "dbt_project.yml").is_file():
        raise UserError(
            f"{root} is not a dbt project: it has no dbt_project.yml.",
            hint="Give the folder that holds dbt_project.yml.",
        )
    doc = load_yaml(root / "dbt_project.yml", "dbt_project.yml")
    name = doc.data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("dbt_project.yml has no name.", location=doc.location(), hint="Add `name: my_project`.")
    project = DbtProject(root, name, doc)
    for model_path in _paths(doc.data, "model-paths", "source-paths", "models"):
        _read_models(project, root / model_path)
    for test_path in _paths(doc.data, "test-paths", None, "tests"):
        for path in sorted((root / test_path).rglob("*.sql")):
            project.singular_tests.append((_shown(root, path), path.read_text(encoding="utf-8")))
    _not_converted_at_all(project)
    return project


def _shown(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_models(project: DbtProject, folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        shown = _shown(project.root, path)
        if path.suffix == ".sql":
            name = path.stem
            if name in project.models:
                raise UserError(
                    f'two models are named "{name}": {project.models[name].file} and {shown}.',
                    location=Location(shown),
                    hint="dbt refuses this too; rename one.",
                )
            folders = path.parent.relative_to(folder).parts
            project.models[name] = ModelFile(name, shown, folders, path.read_text(encoding="utf-8"))
        elif path.suffix in (".yml", ".yaml"):
            _read_properties(project, load_yaml(path, shown))
        elif path.suffix == ".py":
            project.others.append((Spot(shown, 1), f"model {path.stem}", "Python models are not converted"))


def _read_properties(project: DbtProject, doc: YamlDoc) -> None:
    for key in doc.data:
        if key not in ("version", "models", "sources"):
            project.others.append((Spot(doc.display, doc.line((key,))), f"{key}:", f"dbt {key} are not converted"))
    for index, item in enumerate(_list(doc, "models")):
        entry = Entry(item, doc, ("models", index))
        project.properties[str(item.get("name"))] = entry
    for index, item in enumerate(_list(doc, "sources")):
        source = Entry(item, doc, ("sources", index))
        source_name = str(item.get("name"))
        upstream_schema = str(item.get("schema") or source_name)
        tables = item.get("tables") or []
        for position, table in enumerate(tables if isinstance(tables, list) else []):
            if not isinstance(table, dict) or not table.get("name"):
                raise ConfigError(
                    "a source table has no name.", location=source.doc.location((*source.loc, "tables", position))
                )
            entry = Entry(table, doc, (*source.loc, "tables", position))
            identifier = str(table.get("identifier") or table["name"])
            project.sources.append(
                SourceTable(source_name, str(table["name"]), upstream_schema, identifier, entry, source)
            )


def _list(doc: YamlDoc, key: str) -> list[dict[str, Any]]:
    value = doc.data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) and v.get("name") for v in value):
        raise ConfigError(
            f"`{key}:` must be a list of mappings, each with a name.",
            location=doc.location((key,)),
            hint="See dbt's properties files.",
        )
    return value


def _not_converted_at_all(project: DbtProject) -> None:
    data, root = project.doc.data, project.root
    for key in ("on-run-start", "on-run-end", "seeds", "snapshots", "tests", "data_tests"):
        if data.get(key):
            spot = Spot("dbt_project.yml", project.doc.line((key,)))
            project.others.append((spot, f"{key}:", "project-level hooks and configs are not converted"))
    for seeds in _paths(data, "seed-paths", "data-paths", "seeds"):
        for path in sorted((root / seeds).rglob("*.csv")):
            project.others.append((Spot(_shown(root, path)), f"seed {path.stem}", "seeds are not converted"))
    for snapshots in _paths(data, "snapshot-paths", None, "snapshots"):
        for path in sorted((root / snapshots).rglob("*.sql")):
            project.others.append(
                (Spot(_shown(root, path), 1), f"snapshot {path.stem}", "snapshots (history tables) are not converted")
            )
