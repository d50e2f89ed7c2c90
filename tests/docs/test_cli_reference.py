"""docs/cli.md is the CLI's own help, regenerated: it never drifts from the commands."""

from __future__ import annotations

from conveyor.cli.docgen import TARGET, render


def test_the_command_reference_is_current() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), "run: python -m conveyor.cli.docgen"


def test_every_command_is_in_it() -> None:
    text = render()
    for command in ("init", "run", "extract", "extract status", "load", "query", "ls", "validate", "runs show",
                    "pipeline run", "pipeline install", "scheduler", "show ddl"):  # fmt: skip
        assert f"\n## conveyor {command}\n" in text, command
