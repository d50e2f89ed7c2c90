"""Runners: how one table's extract executes, chosen by its ``job_type``.

Each job type is a module of this package with one :class:`Runner`; the registry below maps
the job type to it, and a runner's module is imported only when a job of its type runs
(the ``spark`` runner brings its own dependencies). A new job type is one module plus one
line here, and one name in :data:`conveyor.extract.jobs.JOB_TYPES`.
"""

from __future__ import annotations

import importlib

from conveyor.errors import UserError
from conveyor.extract.jobs import JOB_TYPES
from conveyor.extract.runners.base import Runner, RunnerInput, RunnerOutput, job_json

__all__ = ["RUNNERS", "Runner", "RunnerInput", "RunnerOutput", "job_json", "runner_for"]

#: job type -> "module:class" of its runner
RUNNERS: dict[str, str] = {
    "arrow": "conveyor.extract.runners.arrow:ArrowRunner",
    "command": "conveyor.extract.runners.command:CommandRunner",
    "spark": "conveyor.extract.runners.spark:SparkRunner",
}
assert tuple(RUNNERS) == JOB_TYPES, "conveyor.extract.jobs.JOB_TYPES names every runner"


def runner_for(job_type: str) -> Runner:
    """The runner of a job type (step 4 of the orchestration, docs/extract.md)."""
    if job_type not in RUNNERS:
        raise UserError(
            f'job type "{job_type}" is not available in this version of Conveyor.',
            hint=f"Available: {', '.join(sorted(RUNNERS))}.",
        )
    module, _, name = RUNNERS[job_type].partition(":")
    runner: type[Runner] = getattr(importlib.import_module(module), name)
    return runner()
