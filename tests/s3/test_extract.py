"""Extracts into a lake on S3: every type of PostgreSQL and MariaDB exactly, and increments
with a key (merged at load) and without one (re-read rows taken out of the parts in the bucket).

The tests are the local suite's own (tests/extract), run with the lake in a fresh bucket.
"""

from __future__ import annotations

import pytest
from extract.test_inclusive_increments import (  # noqa: F401
    test_a_lag_overlap_without_a_key_duplicates_nothing,
    test_rows_in_the_watermark_tick_are_not_lost,
    test_warehouse_equals_upstream_after_every_increment,
    upstream,
)
from extract.test_roundtrip import (  # noqa: F401
    test_mariadb_decimal_65_30_reaches_the_lake_exactly,
    test_mariadb_every_type_round_trips_exactly,
    test_postgres_every_type_round_trips_exactly,
    test_postgres_wide_decimals_reach_the_lake_exactly,
)

pytestmark = pytest.mark.usefixtures("s3_lake")
