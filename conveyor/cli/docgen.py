"""The command reference, docs/cli.md, written from the CLI itself so it cannot drift.

``python -m conveyor.cli.docgen`` rewrites it; a test fails when it is out of date. Each
command gets its usage line, its help text and a table of its options, as ``--help``
prints them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

from conveyor.cli.main import cli

TARGET = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
#: the options every command takes, described once in the header
GLOBAL = frozenset({"-p", "--project", "-v", "--verbose", "-q", "--quiet", "--debug", "-h", "--help"})

HEADER = """\
# Command reference

Generated from the CLI by `python -m conveyor.cli.docgen` (a test checks it is current);
[commands.md](commands.md) explains the commands with examples. The global options `-p/--project`,
`-v`, `-q` and `--debug` work before or after any command.
"""


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree, depth first, in name order."""
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, (*path, name))


def render() -> str:
    """docs/cli.md as it should be."""
    parts = [HEADER]
    for path, command in walk(cli):
        if not path:
            continue
        name = " ".join(("conveyor", *path))
        context = click.Context(command, info_name=name)
        usage = " ".join(command.collect_usage_pieces(context))
        parts.append(f"\n## {name}\n\n```\n{name} {usage}\n```\n")
        text = (command.help or "").strip()
        if text:
            parts.append("\n" + _paragraphs(text) + "\n")
        rows = [
            record
            for param in command.get_params(context)
            if isinstance(param, click.Option)
            and not set(param.opts) & GLOBAL
            and (record := param.get_help_record(context))
        ]
        if rows and not isinstance(command, click.Group):
            parts.append("\n| option | meaning |\n|---|---|\n")
            parts.extend(f"| `{_cell(opts)}` | {_cell(help_text)} |\n" for opts, help_text in rows)
        elif isinstance(command, click.Group):
            subs = [n for n in command.list_commands(context) if command.get_command(context, n) is not None]
            parts.append("\nCommands: " + ", ".join(f"`{name} {sub}`" for sub in subs) + ".\n")
    return "".join(parts)


def _paragraphs(text: str) -> str:
    """Click's help text as Markdown: ``\\b`` blocks stay verbatim, other paragraphs are joined."""
    out = []
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        if lines and lines[0] == "\b":
            out.append("```\n" + "\n".join(lines[1:]) + "\n```")
        else:
            out.append(" ".join(lines))
    return "\n\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(TARGET.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
