"""When a build runs each data test: as soon as every relation it reads is built.

A relation's tests gate its dependents: they start only once its tests passed. Most tests
read only their own relation and run on the same worker right after it is built. A test
that reads other relations of the build (``relationships``, custom assertions) waits for
them; meanwhile the relation is *waiting* and its dependents do not start. A test that
reads something depending on its own relation could never run before its dependents, so it
runs *late*, after everything is built, and a failure still keeps the build from being
published.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from conveyor.project import Project
from conveyor.quality.plan import DataTest
from conveyor.warehouse.base import Warehouse, qualified

FINAL = frozenset({"succeeded", "failed", "skipped", "cancelled"})


class TestSchedule:
    """The tests of one build, handed out as the relations they read are built (thread-safe)."""

    def __init__(self, project: Project, tests: Sequence[DataTest], building: set[str]):
        self.building = building
        self.by_relation: dict[str, list[DataTest]] = {}
        self.late: dict[str, list[DataTest]] = {}
        for test in tests:
            others = [read for read in test.reads[1:] if read in building]
            # (most tests read only their own relation: no need to walk what depends on it)
            after = project.dag.downstream(test.relation) if others and test.relation in project.relations else set()
            if any(read in after for read in others):
                self.late.setdefault(test.relation, []).append(test)
            else:
                self.by_relation.setdefault(test.relation, []).append(test)
        self._waiting: dict[str, list[DataTest]] = {}
        self._dispatched: set[str] = set()
        self._lock = threading.Lock()

    def take_now(self, name: str, status: Mapping[str, str]) -> list[DataTest]:
        """The tests of ``name`` (just built) that can run now; the others wait for their relations."""
        now: list[DataTest] = []
        later: list[DataTest] = []
        for test in self.by_relation.pop(name, []):
            ready = all(read not in self.building or status.get(read) in FINAL for read in test.reads[1:])
            (now if ready else later).append(test)
        if later:
            with self._lock:
                self._waiting[name] = later
        return now

    def waiting(self, name: str) -> bool:
        """Whether ``name`` has tests waiting for other relations (its dependents wait too)."""
        with self._lock:
            return name in self._waiting

    def ready(self, status: Mapping[str, str], exclude: Iterable[str] = ()) -> list[str]:
        """Waiting relations whose tests can run now (each returned once)."""
        busy = set(exclude)
        found = []
        with self._lock:
            for name, tests in self._waiting.items():
                if name in self._dispatched or name in busy:
                    continue
                reads = {read for test in tests for read in test.reads[1:] if read in self.building}
                if all(status.get(read) in FINAL for read in reads):
                    self._dispatched.add(name)
                    found.append(name)
        return found

    def take_waiting(self, name: str) -> list[DataTest]:
        with self._lock:
            self._dispatched.discard(name)
            return self._waiting.pop(name, [])

    def release_stuck(self) -> list[str]:
        """Waiting relations that can never run their tests (tests waiting on each other): run them late."""
        with self._lock:
            stuck = [name for name in self._waiting if name not in self._dispatched]
            for name in stuck:
                self.late.setdefault(name, []).extend(self._waiting.pop(name))
        return stuck

    def take_late(self) -> dict[str, list[DataTest]]:
        late, self.late = self.late, {}
        return late


def published_counts(warehouse: Warehouse, tests: Sequence[DataTest]) -> dict[str, int | None]:
    """Row counts of the published relations that ``row_count_change`` tests compare with (None: none yet)."""
    names = sorted({t.relation for t in tests if t.kind == "row_count_change"})
    if not names:
        return {}
    published = warehouse.relations()
    counts: dict[str, int | None] = {}
    for name in names:
        if name in published:
            result = warehouse.query(f"SELECT count(*) FROM {qualified(name)}", 1)
            counts[name] = int(result.rows[0][0])
        else:
            counts[name] = None
    return counts
