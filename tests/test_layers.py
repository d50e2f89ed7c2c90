"""Architecture: a module never imports a module of a higher layer (imports inside functions too)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import conveyor

PACKAGE = Path(conveyor.__file__).parent

#: the lowest layer first; a module may import its own layer and the ones below it
LAYERS: dict[str, float] = {
    "conveyor": 0,  # the package itself: __version__
    "conveyor.errors": 1,
    "conveyor.cancel": 1,  # Ctrl-C and SIGTERM: the statements in flight of a run
    "conveyor.faults": 1,  # crash points for the fault tests: imports nothing of conveyor
    "conveyor.config": 1,
    "conveyor.design": 1,
    "conveyor.graph": 1,
    "conveyor.project": 1.5,
    "conveyor.sources": 2,
    "conveyor.lake": 2,
    "conveyor.warehouse": 2,
    # what a project needs of a warehouse before connecting (flags, no driver): read by config and project
    "conveyor.warehouse.dialect": 1,
    "conveyor.warehouse.duckdb.dialect": 1,
    "conveyor.warehouse.postgres.dialect": 1,
    "conveyor.warehouse.redshift.dialect": 1,
    "conveyor.tracking": 2,
    "conveyor.runctx": 2.5,
    "conveyor.quality": 2.75,  # data tests: what they are (design, project) and running them in a run
    "conveyor.results": 2.5,  # the run results file: built from the tracking store, written by runctx
    "conveyor.reporting": 1,
    "conveyor.extract": 3,
    "conveyor.load": 3,
    "conveyor.bootstrap": 3,  # designs from upstream catalogs: uses sources and the project, like extract
    "conveyor.validate": 3,
    "conveyor.dbtimport": 3,  # a dbt project as designs and SQL: reads design and config models, like bootstrap
    "conveyor.pipeline": 4,
    "conveyor.api": 4.5,
    "conveyor.cli": 5,
    "conveyor.__main__": 5,
    "conveyor.web": 5,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> float | None:
    """The layer of the longest LAYERS prefix of ``module`` (the bare package matches only itself)."""
    if module == "conveyor":
        return LAYERS["conveyor"]
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every conveyor module that ``path`` imports, anywhere in the file, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # "from conveyor import api" imports the module conveyor.api
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, node.lineno))
    return [(name, line) for name, line in found if name == "conveyor" or name.startswith("conveyor.")]


def test_the_package_is_found() -> None:
    assert {"conveyor.errors", "conveyor.project", "conveyor.cli.main", "conveyor.warehouse.duckdb.warehouse"} <= set(
        MODULES
    )


def test_every_module_has_a_layer() -> None:
    missing = sorted(name for name in MODULES if layer(name) is None)
    assert missing == [], "add these to LAYERS in tests/test_layers.py (and to docs/architecture.md)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module: str) -> None:
    own = layer(module)
    if own is None:
        pytest.skip("no layer (reported by test_every_module_has_a_layer)")
    upward = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {name} (layer {layer(name)} > {own})"
        for name, line in imports(MODULES[module], module)
        if (layer(name) or 0) > own
    ]
    assert upward == []


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "import os\nfrom conveyor import api\n\ndef later():\n    from conveyor.cli.main import cli\n"
        "    import conveyor.web.app\n    from . import sibling\n",
        encoding="utf-8",
    )
    found = imports(source, "conveyor.lake.probe")
    assert found == [
        ("conveyor.api", 2),
        ("conveyor.cli.main", 5),
        ("conveyor.web.app", 6),
        ("conveyor.lake", 7),
    ]
    assert [layer(name) for name, _ in found] == [4.5, 5, 5, 2]


def import_graph() -> dict[str, set[str]]:
    """Module -> the conveyor modules it imports (a module importing its own package is not an edge:
    ``conveyor.warehouse.duckdb`` may read ``conveyor.warehouse``'s registry helpers)."""
    return {
        module: {name for name, _ in imports(path, module) if name != module and not module.startswith(name + ".")}
        for module, path in MODULES.items()
    }


def test_no_import_cycle() -> None:
    """Imports inside functions count: a cycle hidden behind a lazy import is still a cycle of design."""
    try:
        list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        pytest.fail("import cycle: " + " -> ".join(exc.args[1]))
