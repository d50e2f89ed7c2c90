"""The reference docs stay in sync with the code."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.main import cli
from conveyor.config.docgen import documents

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_generated_references_are_up_to_date() -> None:
    for name, text in documents().items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/{name} is stale: run `python -m conveyor.config.docgen`"


def _commands(group: click.Group, prefix: str = "conveyor") -> list[str]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
        else:
            found.append(path)
    return found


def test_every_command_has_a_section_in_the_docs() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    # default subcommands are documented under their group's name
    missing = [
        path
        for path in _commands(cli)
        if f"`{path}" not in text and f"## {path}" not in text and not path.endswith((" tables",))
    ]
    assert not missing, f"commands without documentation in docs/: {missing}"
