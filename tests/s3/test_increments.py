"""Incremental extracts into a lake on S3, and chains of them loaded and updated.

The tests are the local suites' own, run with the lake in a fresh bucket:

* tests/extract/test_incremental.py: watermarks, lag overlaps, ``--full``, a failed increment
  (on PostgreSQL and MariaDB);
* tests/differential/test_roundtrip_incremental.py: random insert/update sequences, each step
  extracted and applied by ``load`` (the whole chain, merged by key) or ``update``, the
  DuckDB warehouse compared with the upstream table after every step and PostgreSQL at the end.
"""

from __future__ import annotations

import pytest
from differential.test_roundtrip_incremental import (
    test_increments_past_the_watermark_keep_the_warehouse_equal_to_upstream,
    test_rows_equal_to_the_watermark_are_not_lost,
)
from extract.conftest import cli, upstream  # noqa: F401 - the fixtures
from extract.test_incremental import (  # noqa: F401
    test_changing_the_cursor_starts_over_with_a_full_extract,
    test_increment_records_its_low_watermark_in_the_tracking_store,
    test_increments_pick_up_exactly_the_new_and_changed_rows,
    test_integer_cursor_with_lag_rereads_the_overlap,
    test_partitioned_increments_of_an_instant_cursor,
)

pytestmark = pytest.mark.usefixtures("s3_lake")

for _sequence in (
    test_increments_past_the_watermark_keep_the_warehouse_equal_to_upstream,
    test_rows_equal_to_the_watermark_are_not_lost,
):  # as marked in their own module (whose pytestmark does not travel with them)
    pytest.mark.postgres(pytest.mark.slow(_sequence))
