"""Every example of docs/api.md runs, in order, in the test project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_page_has_examples() -> None:
    assert len(examples()) >= 4


def test_the_examples_run(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project_dir)
    monkeypatch.delenv("CONVEYOR_PROJECT", raising=False)
    namespace: dict[str, object] = {}
    for number, code in enumerate(examples(), 1):
        try:
            exec(compile(code, f"docs/api.md example {number}", "exec"), namespace)
        except Exception as exc:  # name the example, not this test
            pytest.fail(f"docs/api.md example {number} failed: {type(exc).__name__}: {exc}")
    printed = capsys.readouterr().out
    assert "mart.customer_totals" in printed  # the first example printed
