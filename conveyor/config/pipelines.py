"""Pipeline definitions: when, where, what and who hears about it.

A pipeline is defined under ``pipelines:`` in conveyor.yaml or in ``pipelines/<name>.yaml``.
Every key is documented here, where it is defined.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from conveyor.config.base import IDENTIFIER, StrictModel

Outcome = Literal["success", "failure"]
StepKind = Literal["extract", "load", "update", "validate", "load_skip_copy", "freshness"]
PRESETS: dict[str, list[str]] = {
    "full": ["extract", "load"],
    "selective": ["extract", "update"],
    "validation": ["validate", "load_skip_copy"],
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?|h|hours?)?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def seconds(value: str | float | int) -> float:
    """Parse a duration: a number of seconds, or "90s", "15 min", "2h"."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f'"{value}" is not a duration; write e.g. 600, "15 min" or "2h"')
    unit = (match.group(2) or "s")[0].lower()
    return float(match.group(1)) * _UNIT_SECONDS[unit]


class Environments(StrictModel):
    """Where a pipeline loads: a primary environment and an optional secondary one."""

    primary: str = Field(description="The environment loaded first (e.g. production).")
    secondary: str | None = Field(
        default=None, description="Loaded after the primary, from the same extract (never extracted twice)."
    )
    scratch: str | None = Field(
        default=None, description="For validation steps: where `load --skip-copy` builds (default: the primary)."
    )


class NotifyTarget(StrictModel):
    """A notification target: an apprise URL (Slack, email, JSON webhook, SNS and about 100 more)."""

    url: str = Field(description="An apprise URL, e.g. json://host/path or mailto://... Secrets as ${VAR}.")
    on: list[Outcome] = Field(
        default_factory=lambda: list[Outcome](["failure"]), description="When to notify: success, failure or both."
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, value: object) -> object:
        # YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true, as in {url: ..., on: [failure]}
        if isinstance(value, dict) and any(key is True for key in value) and "on" not in value:
            return {("on" if key is True else key): item for key, item in value.items()}
        return value


class Runtime(StrictModel):
    """Settings of the runtime environment; they merge over the project's defaults."""

    jobs: int | None = Field(default=None, ge=1, le=256, description="Parallel workers (overrides defaults.jobs).")
    spark_master: str | None = Field(default=None, description="Spark master for `spark` job types.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables set for the run's steps.")


class PipelineConfig(StrictModel):
    """One pipeline: schedule, steps, environments, selection, dead-man switch and notifications."""

    description: str | None = Field(default=None, description="Free text.")
    schedule: str = Field(
        description='"nightly at 02:30 Europe/Berlin", a cron expression ("cron 30 2 * * 1-5 Europe/Berlin" '
        'or just "30 2 * * *", UTC; or a shorthand such as "@hourly" or "@daily Europe/Berlin"), '
        '"once at 2026-12-01T02:00:00+01:00", or "manual".'
    )
    steps: Literal["full", "selective", "validation"] | list[StepKind] = Field(
        default="full",
        description="full (extract, load), selective (extract, update), validation (validate, load --skip-copy "
        "into the scratch environment), or a list of steps (freshness: fail when a source table of the "
        "selection is older than its error_after, see docs/freshness.md).",
    )
    environments: Environments = Field(description="The primary and optional secondary environment.")
    selection: list[str] = Field(default_factory=list, description="Selection terms (default: everything).")
    required: list[str] = Field(
        default_factory=list, description="Selection terms that must succeed (added to the project's `required`)."
    )
    deadman: list[str] = Field(
        default_factory=list,
        description="Dead-man switch URLs (healthchecks.io style): <url>/start, <url> on success, <url>/fail.",
    )
    notify: list[NotifyTarget] = Field(default_factory=list, description="Notification targets.")
    timeout: str | float = Field(default="6h", description='Longest a run may take: seconds, "90 min" or "6h".')
    retries: int = Field(default=0, ge=0, le=10, description="Times a failed step is tried again.")
    setup: list[str] = Field(
        default_factory=list,
        description="Shell commands run before the first step; the dead-man /start ping follows their success.",
    )
    runtime: Runtime = Field(default_factory=Runtime, description="Runtime settings, merged over the defaults.")
    grace: str | float = Field(
        default="1h",
        description="A run missed while the scheduler was down still runs at start if it is at most this late.",
    )

    @field_validator("deadman", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("timeout", "grace")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        seconds(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from conveyor.config.schedule import parse_schedule

        parse_schedule(value)
        return value

    @property
    def step_list(self) -> list[str]:
        """The steps in order, presets expanded."""
        return PRESETS[self.steps] if isinstance(self.steps, str) else list(self.steps)

    @property
    def timeout_s(self) -> float:
        return seconds(self.timeout)

    @property
    def grace_s(self) -> float:
        return seconds(self.grace)


def check_name(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError(f'"{name}" is not a valid pipeline name: use letters, digits and underscores')
    return name
