"""The example a new user runs first validates clean, and the bootstrap the tour shows changes
nothing: a fresh checkout must not greet people with warnings that tell them to rewrite it."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from testkit.cli import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop"


def test_the_example_validates_clean_and_bootstrap_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("lake", "warehouse", "upstream", ".conveyor"))
    spec = importlib.util.spec_from_file_location("shop_example_generate", root / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)  # the example's own generator
    spec.loader.exec_module(generate)
    generate.generate(root / "upstream" / "shop.db", scale=0.05, seed=7)

    validated = run_cli("-p", str(root), "validate", "--format", "json")
    assert validated.code == 0, validated.output
    assert validated.json()["problems"] == []

    planned = run_cli("-p", str(root), "bootstrap", "--update", "--dry-run")
    assert planned.code == 0, planned.output
    assert "unchanged" in planned.stdout and "update" not in planned.stdout.replace("--update", "")
    assert not list(root.rglob("*.orig"))

    # a hand edit that upstream does not back: the dry run shows the change as a diff, and writes nothing
    design = root / "schemas" / "shop" / "product_reviews.yaml"
    before = design.read_text()
    design.write_text(before.replace("  - name: rating\n    type: bigint", "  - name: rating\n    type: smallint"))
    edited = design.read_text()
    planned = run_cli("-p", str(root), "bootstrap", "--update", "--dry-run", "shop.product_reviews", "--format", "json")
    assert planned.code == 0, planned.output
    (table,) = planned.json()["tables"] if isinstance(planned.json(), dict) else planned.json()
    assert table["action"] == "updated" and table["dry_run"] is True
    assert "-    type: smallint\n+    type: bigint\n" in table["diff"]
    assert design.read_text() == edited
