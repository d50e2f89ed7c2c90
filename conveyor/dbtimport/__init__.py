"""``conveyor import-dbt``: a dbt project whose models use only ``ref()``/``source()`` as a Conveyor project.

:func:`plan_import` reads the dbt project and decides every file (nothing is written);
:func:`import_dbt` writes them, refusing to overwrite a file unless asked. docs/import-dbt.md
describes what converts and how.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from conveyor.config.yamlfile import load_yaml
from conveyor.dbtimport.convert import Importer, Plan
from conveyor.dbtimport.dbtproject import read_project
from conveyor.dbtimport.report import ConvertedModel, ImportReport, Item
from conveyor.errors import UserError

__all__ = ["ConvertedModel", "ImportReport", "Item", "import_dbt", "plan_import"]

_NAME = re.compile(r"[^a-z0-9_]+")


def plan_import(path: Path | str, into: Path | str, schema: str | None = None) -> Plan:
    """What importing the dbt project at ``path`` into the folder ``into`` would write.

    ``schema`` is the schema of models without a ``schema`` config (dbt's target schema);
    it defaults to the dbt project's name.
    """
    project = read_project(Path(path))
    default_schema = schema or _NAME.sub("_", project.name.lower())
    report = ImportReport(project.name, str(into), dry_run=True)
    files = Importer(project, default_schema, report).plan()
    sources = sorted({name.split(".")[0] for name in report.sources})
    settings = Path(into) / "conveyor.yaml"
    if settings.is_file():
        configured = _configured_sources(settings)
        missing = [s for s in sources if s not in configured]
        if missing:
            report.conveyor_yaml = "sources:\n" + "".join(_source_yaml(s) for s in missing)
    else:
        files["conveyor.yaml"] = _skeleton(_NAME.sub("_", project.name.lower()), sources)
        report.next_steps.insert(0, "set each source's type and DSN in conveyor.yaml")
    report.next_steps += ["conveyor validate", "conveyor run"]
    report.not_converted.sort(key=_order)
    report.notes.sort(key=_order)
    report.files = sorted(files)
    return Plan(report, files)


def import_dbt(
    path: Path | str, into: Path | str, schema: str | None = None, *, dry_run: bool = False, force: bool = False
) -> ImportReport:
    """Import the dbt project at ``path`` into ``into``; see :func:`plan_import`.

    Existing files are not overwritten unless ``force`` (bad input, exit code 2, nothing written).
    """
    plan = plan_import(path, into, schema)
    root = Path(into)
    existing = [name for name in plan.files if (root / name).exists()]
    if existing and not force and not dry_run:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise UserError(
            f"import-dbt would overwrite {len(existing)} file(s) in {root}: {shown}.",
            hint="Import into an empty folder (--into), or pass --force to overwrite them.",
        )
    plan.report.dry_run = dry_run
    if not dry_run:
        for name, text in plan.files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.import")
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, target)
    return plan.report


def _order(item: Item) -> tuple[str, int]:
    file, _, line = item.where.rpartition(":")
    return (file, int(line)) if line.isdigit() else (item.where, 0)


def _configured_sources(settings: Path) -> set[str]:
    doc = load_yaml(settings, "conveyor.yaml")
    sources = doc.data.get("sources") or {}
    found: set[str] = set()
    for name, config in sources.items() if isinstance(sources, dict) else ():
        target = config.get("target_schema") if isinstance(config, dict) else None
        found.add(str(target or name))
    return found


def _variable(source: str) -> str:
    return _NAME.sub("_", source.lower()).upper() + "_DSN"


def _source_yaml(source: str) -> str:
    return (
        f"  {source}:\n"
        f"    type: postgres   # the database dbt read source {source} from: postgres, mysql or sqlite\n"
        f"    dsn: ${{{_variable(source)}}}\n"
    )


def _skeleton(name: str, sources: list[str]) -> str:
    """A conveyor.yaml for the imported project: its sources still need their type and DSN."""
    parts = [
        "# Written by conveyor import-dbt. Point each source at the database dbt read it from;\n",
        "# docs/configuration.md describes every key.\n",
        f"name: {name}\n\n",
    ]
    if sources:
        parts += ["sources:\n", *(_source_yaml(s) for s in sources), "\n"]
    parts += [
        "lake:\n  path: lake\n\n",
        f"environments:\n  development:\n    type: duckdb\n    dsn: warehouse/{name}_development.duckdb\n",
        "default_environment: development\n\n",
        "tracking:\n  dsn: sqlite:///.conveyor/tracking.db\n",
    ]
    return "".join(parts)
