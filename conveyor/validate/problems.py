"""What validation finds: problems with a code, a severity and a place, and the report that groups them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import ConveyorError, Location
from conveyor.validate.codes import CODES, Severity

SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

#: the checks, in the order they run; every problem names the one that found it
CHECKS = ("project", "designs", "dependencies", "sql", "sources", "warehouse")


@dataclass(frozen=True)
class Problem:
    """One thing validation found.

    Attributes:
        code: a stable identifier (see :data:`conveyor.validate.codes.CODES` and docs/validate.md).
        severity: ``error`` (exit code 2), ``warning`` or ``info``.
        message: what is wrong, in one sentence or two.
        location: the file (and line, column) to change, relative to the project.
        hint: what to do about it.
        relation: the relation it belongs to (None: the project as a whole).
        check: which check found it (one of :data:`CHECKS`).
        details: machine-readable extras, e.g. a drift row ``{"column", "change", "design", "upstream"}``.
    """

    code: str
    severity: Severity
    message: str
    location: Location | None = None
    hint: str | None = None
    relation: str | None = None
    check: str = "project"
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def render(self) -> str:
        """``file:line: message hint``, like every other Conveyor error."""
        prefix = f"{self.location}: " if self.location else ""
        return prefix + self.message + (f" {self.hint}" if self.hint else "")

    def to_json(self) -> dict[str, Any]:
        where = self.location
        return {
            "code": self.code,
            "severity": self.severity,
            "check": self.check,
            "relation": self.relation,
            "file": str(where.path) if where else None,
            "line": where.line if where else None,
            "column": where.column if where else None,
            "message": self.message,
            "hint": self.hint,
            "details": dict(self.details),
        }


def problem(
    code: str,
    message: str,
    *,
    location: Location | None = None,
    hint: str | None = None,
    relation: str | None = None,
    check: str | None = None,
    severity: Severity | None = None,
    details: dict[str, Any] | None = None,
) -> Problem:
    """A problem whose severity and check default to those registered for ``code``."""
    info = CODES.get(code)
    return Problem(
        code=code,
        severity=severity or (info.severity if info else "error"),
        message=message,
        location=location,
        hint=hint,
        relation=relation,
        check=check or (info.check if info else "project"),
        details=details or {},
    )


def from_error(exc: ConveyorError, *, relation: str | None = None, check: str | None = None) -> Problem:
    """A problem from an exception a lower layer raised (a load problem, a secret, a warehouse error)."""
    return problem(exc.code, exc.message, location=exc.location, hint=exc.hint, relation=relation, check=check)


@dataclass
class Report:
    """Everything one validation found, with what was checked.

    Attributes:
        problems: every problem, in check order.
        relations: how many relations the selection held.
        checks: the checks that ran (some are skipped by options).
        seconds: wall time of the validation.
        notes: short remarks for people (what was skipped and why).
    """

    problems: list[Problem] = field(default_factory=list)
    relations: int = 0
    checks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    order: dict[str, int] = field(default_factory=dict)
    """Relation name -> position in execution order, to sort groups."""

    def extend(self, found: Iterable[Problem]) -> None:
        self.problems.extend(found)

    def with_severity(self, severity: Severity) -> list[Problem]:
        return [p for p in self.problems if p.severity == severity]

    @property
    def errors(self) -> list[Problem]:
        return self.with_severity("error")

    @property
    def warnings(self) -> list[Problem]:
        return self.with_severity("warning")

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and notes do not count)."""
        return not self.errors

    @property
    def exit_code(self) -> int:
        """2 when there is an error, else 0."""
        return 0 if self.ok else 2

    def sorted(self) -> list[Problem]:
        """Problems of the project first, then by relation in execution order, then by file and line."""
        last = len(self.order) + 1

        def key(p: Problem) -> tuple[int, str, str, int, int, int, str]:
            group = -1 if p.relation is None else self.order.get(p.relation, last)
            where = p.location
            return (
                group,
                p.relation or "",
                str(where.path) if where else "",
                (where.line or 0) if where else 0,
                (where.column or 0) if where else 0,
                SEVERITIES.index(p.severity),
                p.code,
            )

        return sorted(self.problems, key=key)

    def by_relation(self) -> dict[str | None, list[Problem]]:
        """Problems grouped by relation (None: the project), groups and problems in :meth:`sorted` order."""
        groups: dict[str | None, list[Problem]] = {}
        for found in self.sorted():
            groups.setdefault(found.relation, []).append(found)
        return groups

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "relations": self.relations,
            "problems": [p.to_json() for p in self.sorted()],
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "checks": list(self.checks),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }
