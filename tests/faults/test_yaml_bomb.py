"""A "billion laughs" file anywhere in a project is refused quickly, at its line, with exit code 2.

Ten nested anchors fit in under 1 KB and expand to 10^10 values; every command that reads
the file must refuse it (``yaml-aliases``) instead of hanging (it took the CLI over 180 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BOMB = 'lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 10)
)
PIPELINE = "schedule: manual\nenvironments: {primary: dev}\n"
# the file the bomb goes in, and commands that read that file
CASES = [
    ("conveyor.yaml", ["validate"]),
    ("conveyor.yaml", ["run"]),
    ("conveyor.yaml", ["ls"]),
    ("schemas/shop/products.yaml", ["validate", "--format", "json"]),
    ("schemas/shop/products.yaml", ["extract"]),
    ("pipelines/nightly.yaml", ["pipeline", "run", "nightly"]),
    ("pipelines/nightly.yaml", ["pipeline", "show", "nightly"]),
]


@pytest.mark.parametrize(("where", "command"), CASES)
def test_a_billion_laughs_is_refused_at_its_line(
    make_project: Callable[..., Path], cli: Callable[..., Any], where: str, command: list[str]
) -> None:
    root = make_project()
    (root / "pipelines").mkdir()
    (root / "pipelines" / "nightly.yaml").write_text(PIPELINE)
    path = root / where
    before = path.read_text()
    path.write_text(before + BOMB)
    assert len(BOMB) < 1024
    bomb_line = len(before.splitlines()) + 5  # lol4: its first alias takes the file past 100,000 values
    began = time.monotonic()
    result = cli(*command, cwd=root, timeout=30)
    assert time.monotonic() - began < 10  # the CLI's own start-up included; the check takes < 1 ms
    assert result.code == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    if "json" in command:
        problems = [p for p in json.loads(result.stdout)["problems"] if p["code"] == "yaml-aliases"]
        assert [(p["file"], p["line"]) for p in problems] == [(where, bomb_line)]
    else:
        assert f"{where}:{bomb_line}:" in output and "alias" in output
