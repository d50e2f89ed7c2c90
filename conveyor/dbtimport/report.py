"""What ``import-dbt`` converted, what it could not (with file:line and why), and what to do next."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Item:
    """One thing not converted (or converted with a caveat): where, what and why."""

    where: str
    what: str
    why: str

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "what": self.what, "why": self.why}


@dataclass(frozen=True)
class ConvertedModel:
    """A dbt model and the relation it became."""

    model: str
    relation: str
    kind: str
    materialized: str


@dataclass
class ImportReport:
    """The outcome of one import; ``ok`` when everything converted."""

    project: str
    into: str
    dry_run: bool
    models: list[ConvertedModel] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    tests: int = 0
    assertions: list[str] = field(default_factory=list)
    not_converted: list[Item] = field(default_factory=list)
    notes: list[Item] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    conveyor_yaml: str | None = None
    """YAML to add to the existing conveyor.yaml (None when nothing is missing or it was written)."""
    next_steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.not_converted

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "into": self.into,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "models": [vars(m) for m in self.models],
            "sources": self.sources,
            "tests": self.tests,
            "assertions": self.assertions,
            "not_converted": [i.to_json() for i in self.not_converted],
            "notes": [i.to_json() for i in self.notes],
            "files": self.files,
            "conveyor_yaml": self.conveyor_yaml,
            "next_steps": self.next_steps,
        }
