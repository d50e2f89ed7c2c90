"""One exception hierarchy for Conveyor.

Every error keeps its inputs as attributes and renders one actionable paragraph:
what is wrong, where (file:line, relation, column) and what to do. The CLI has one
place (``conveyor.cli.main``) that turns these into ``Error: ...`` and an exit code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """A place in a project file; ``line`` and ``column`` are 1-based."""

    path: Path | str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = str(self.path)
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


class ConveyorError(Exception):
    """Base of all errors Conveyor raises on purpose."""

    exit_code = 1
    code = "error"
    """A stable, short identifier of the kind of problem (for tests, JSON output and docs)."""

    def __init__(
        self, message: str, *, location: Location | None = None, hint: str | None = None, code: str | None = None
    ):
        self.message = message
        self.location = location
        self.hint = hint
        if code is not None:
            self.code = code
        super().__init__(self.render())

    def render(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        text = prefix + self.message
        if self.hint:  # after a message of several lines (SQL with a caret), on a line of its own
            if "\n" in self.message.rstrip():
                return text + "\n" + self.hint
            # a driver's message often ends without a full stop: the hint is a sentence of its own
            return text + ("" if text.rstrip().endswith((".", "!", "?", ":", ";")) else ".") + " " + self.hint
        return text


class UserError(ConveyorError):
    """Bad input: a project file, a selection, an argument. Exit code 2, nothing written."""

    code = "bad-input"

    exit_code = 2


class ProjectError(UserError):
    """One or more problems in the project's files."""

    def __init__(self, problems: list[ConveyorError]):
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, location=first.location, hint=first.hint)

    def render(self) -> str:
        return "\n".join(p.render() for p in getattr(self, "problems", [])) or super().render()


class ConfigError(UserError):
    """A settings or design file is malformed or inconsistent."""

    code = "config"


class SelectionError(UserError):
    """A selection term matches nothing or cannot be parsed."""

    code = "selection"


class DependencyError(UserError):
    """A dependency is missing or the DAG has a cycle."""

    code = "dependency"


class SecretError(UserError):
    """A secret is missing (unset environment variable) or sits inline in a file."""

    code = "secret"


class RunFailed(ConveyorError):
    """A run finished with failures; the details are in the tracking store."""

    code = "run-failed"

    exit_code = 1


class TransientError(ConveyorError):
    """A failure worth retrying: lost connection, deadlock, serialization failure."""

    code = "transient"


class TerminalError(ConveyorError):
    """A failure that retrying will not fix."""

    code = "terminal"


class ExtractError(TerminalError):
    """An extract of one table failed."""

    code = "extract"


class LoadError(TerminalError):
    """Loading or building one relation failed."""

    code = "load"


class LakeError(UserError):
    """The lake has no committed extract where one is needed, or is unreadable."""

    code = "lake"


class WarehouseError(TerminalError):
    """The warehouse refused a statement or cannot be reached."""

    code = "warehouse"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' for the closest candidate, or '' when none is close."""
    matches = get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f' Did you mean "{matches[0]}"?' if matches else ""
