"""Loads, updates and resumed loads from a lake on S3, into DuckDB and PostgreSQL.

The tests are the local suites' own (tests/load, tests/warehouse/postgres: ``update`` merging
increments by key, a failing update rolled back, ``load --resume`` after a failed load and
after a SIGKILLed run into PostgreSQL), run with every
project's lake under a fresh bucket: ``make_project`` and ``project_dir`` (tests/s3/conftest.py)
and ``pg_project`` (``LAKE`` of tests/warehouse/postgres/conftest.py, set by ``s3_lake``).
"""

from __future__ import annotations

import pytest
from load.test_resume_changes import (  # noqa: F401
    test_a_changed_design_counts_too,
    test_a_resume_that_cannot_tell_is_refused,
    test_resume_rebuilds_what_changed_since_the_failed_load,
    test_unchanged_relations_are_not_rebuilt,
)
from load.test_update_upgrade import (  # noqa: F401
    test_a_failing_update_rolls_everything_back,
    test_update_merges_only_new_increments_and_recomputes_dependents,
    test_upgrade_into_a_sandbox_schema_leaves_production_alone,
)
from warehouse.postgres.conftest import pg_project, pgwh_database, pgwh_dsn, roles, sql  # noqa: F401
from warehouse.postgres.test_resume_abandoned import (  # noqa: F401
    test_a_sigkilled_run_into_postgres_is_abandoned_and_its_kept_staging_resumed,
)
from warehouse.postgres.test_update_upgrade_unload import (  # noqa: F401
    test_an_update_that_changes_columns_recreates_the_table_and_the_views_over_it,
    test_update_merges_an_increment_by_key_and_keeps_grants_and_views,
    test_update_of_an_empty_warehouse_creates_the_relations,
)

pytestmark = pytest.mark.usefixtures("s3_lake")
