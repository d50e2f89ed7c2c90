"""The Python API. The CLI is a thin shell over these functions.

Example::

    from conveyor import api
    project = api.open_project("examples/shop")
    outcome = api.run(project)
    print(outcome.ok, outcome.build.rows)

The functions live in ``commands`` (what changes something), ``reading`` (projects, their
history, stores and warehouses) and ``pipelines``; import them from here.
"""

from conveyor.api.commands import (
    Outcome,
    Plan,
    extract_tables,
    load,
    plan,
    plan_extract,
    relation_ddl,
    run,
    test,
    unload,
    unparsed_notes,
    update,
    upgrade,
)
from conveyor.api.migrate import import_dbt
from conveyor.api.pipelines import (
    install_pipeline,
    open_project_for_run,
    pipelines,
    run_pipeline,
    run_scheduler,
    scheduler_running,
    set_pipeline_status,
)
from conveyor.api.reading import (
    bootstrap,
    extract_status,
    freshness,
    open_environment,
    open_project,
    open_tracking,
    query,
    run_events,
    runs,
    validate,
    whole_schemas,
    with_dependents,
)
from conveyor.load import LOCK_TIMEOUT_S

__all__ = [
    "LOCK_TIMEOUT_S",
    "Outcome",
    "Plan",
    "bootstrap",
    "extract_status",
    "extract_tables",
    "freshness",
    "import_dbt",
    "install_pipeline",
    "load",
    "open_environment",
    "open_project",
    "open_project_for_run",
    "open_tracking",
    "pipelines",
    "plan",
    "plan_extract",
    "query",
    "relation_ddl",
    "run",
    "run_events",
    "run_pipeline",
    "run_scheduler",
    "runs",
    "scheduler_running",
    "set_pipeline_status",
    "test",
    "unload",
    "unparsed_notes",
    "update",
    "upgrade",
    "validate",
    "whole_schemas",
    "with_dependents",
]
