"""The dependency graph of a project's relations, and a scheduler to run parts of it.

Nodes are relations named ``"schema.table"``; an edge ``(upstream, downstream)``
means the downstream relation's query reads the upstream one. Everything here is
iterative and linear in nodes plus edges, so projects of tens of thousands of
relations neither hit Python's recursion limit nor slow validation down.
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from conveyor.errors import DependencyError, did_you_mean

__all__ = ["Dag", "DagScheduler", "Node"]


@dataclass(frozen=True)
class Node:
    """A relation in the graph: a loaded source table, a table built by CTAS, or a view."""

    name: str
    kind: str
    tags: frozenset[str] = frozenset()


class Dag:
    """An acyclic graph of relations with a deterministic execution order.

    Raises:
        DependencyError: when a node name repeats, an edge names an unknown node,
            or the edges form a cycle.
    """

    def __init__(self, nodes: Iterable[Node], edges: Iterable[tuple[str, str]]):
        self.nodes: dict[str, Node] = {}
        for node in nodes:
            if node.name in self.nodes:
                raise DependencyError(f'relation "{node.name}" is defined twice.')
            self.nodes[node.name] = node
        self._parents: dict[str, list[str]] = {name: [] for name in self.nodes}
        self._children: dict[str, list[str]] = {name: [] for name in self.nodes}
        for upstream, downstream in dict.fromkeys(edges):
            self._check_edge(upstream, downstream)
            self._parents[downstream].append(upstream)
            self._children[upstream].append(downstream)
        for adjacent in (*self._parents.values(), *self._children.values()):
            adjacent.sort()
        self._levels = self._compute_levels()
        self._order = sorted(self.nodes, key=lambda name: (self._levels[name], name))
        self._position = {name: index for index, name in enumerate(self._order)}

    def _check_edge(self, upstream: str, downstream: str) -> None:
        for name in (upstream, downstream):
            if name not in self.nodes:
                raise DependencyError(
                    f'dependency {upstream} -> {downstream} names unknown relation "{name}".'
                    + did_you_mean(name, self.nodes)
                )

    def _compute_levels(self) -> dict[str, int]:
        """Kahn's algorithm; nodes it cannot reach lie on or behind a cycle."""
        pending = {name: len(parents) for name, parents in self._parents.items()}
        queue = deque(name for name, count in pending.items() if count == 0)
        levels: dict[str, int] = {}
        while queue:
            name = queue.popleft()
            # every parent is placed before its child, so the max is final here
            levels[name] = max((levels[p] + 1 for p in self._parents[name]), default=0)
            for child in self._children[name]:
                pending[child] -= 1
                if pending[child] == 0:
                    queue.append(child)
        if len(levels) < len(self.nodes):
            cycle = self._find_cycle({name for name in self.nodes if name not in levels})
            raise DependencyError("dependency cycle: " + " -> ".join(cycle))
        return levels

    def _find_cycle(self, remaining: set[str]) -> list[str]:
        """Return one cycle as a closed path, starting from its smallest node name.

        Every node left over by Kahn's algorithm has a parent that is also left
        over, so walking parents from any of them must revisit a node.
        """
        path: list[str] = []
        seen: dict[str, int] = {}
        name = min(remaining)
        while name not in seen:
            seen[name] = len(path)
            path.append(name)
            name = next(p for p in self._parents[name] if p in remaining)
        # the walk went against the edges: reverse it to read upstream -> downstream
        cycle = path[seen[name] :][::-1]
        start = cycle.index(min(cycle))
        cycle = cycle[start:] + cycle[:start]
        return [*cycle, cycle[0]]

    def _require(self, name: str) -> None:
        if name not in self.nodes:
            raise DependencyError(f'unknown relation "{name}".' + did_you_mean(name, self.nodes))

    def parents(self, name: str) -> list[str]:
        """Direct upstream relations of ``name``, sorted by name."""
        self._require(name)
        return list(self._parents[name])

    def children(self, name: str) -> list[str]:
        """Direct downstream relations of ``name``, sorted by name."""
        self._require(name)
        return list(self._children[name])

    def upstream(self, name: str, depth: int | None = None) -> set[str]:
        """All relations ``name`` depends on, directly or not (at most ``depth`` steps away), excluding itself."""
        self._require(name)
        return _reach(name, self._parents, depth)

    def downstream(self, name: str, depth: int | None = None) -> set[str]:
        """All relations that depend on ``name``, directly or not (at most ``depth`` steps away), excluding itself."""
        self._require(name)
        return _reach(name, self._children, depth)

    def levels(self) -> dict[str, int]:
        """0 for a node without parents, else one more than its deepest parent."""
        return dict(self._levels)

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """Topological order of all nodes, or of a subset in the same global order.

        Ties are broken by level, then name, so the order never depends on input order.
        """
        if names is None:
            return list(self._order)
        subset = set(names)
        for name in subset:
            self._require(name)
        return sorted(subset, key=self._position.__getitem__)

    def scheduler(self, names: Iterable[str]) -> DagScheduler:
        """A scheduler that hands out ``names`` as soon as their dependencies are done."""
        return DagScheduler(self, names)

    def _selected_parents(self, selected: set[str]) -> dict[str, set[str]]:
        """For each selected node, the nearest selected ancestors.

        An unselected relation in between is not rebuilt, but a view reads through
        it, so a selected node still waits for selected relations behind it.
        """
        nearest: dict[str, set[str]] = {}
        last = max((self._position[name] for name in selected), default=-1)
        for name in self._order[: last + 1]:
            found: set[str] = set()
            for parent in self._parents[name]:
                found |= {parent} if parent in selected else nearest[parent]
            nearest[name] = found
        return {name: nearest[name] for name in selected}


def _reach(start: str, adjacency: dict[str, list[str]], depth: int | None = None) -> set[str]:
    """Every node reachable from ``start`` (breadth first, so each is found at its shortest distance)."""
    seen: set[str] = set()
    queue = deque((name, 1) for name in adjacency[start])
    while queue:
        name, distance = queue.popleft()
        if name in seen or (depth is not None and distance > depth):
            continue
        seen.add(name)
        queue.extend((following, distance + 1) for following in adjacency[name])
    return seen


class DagScheduler:
    """Hands out the nodes of a selection in dependency order, for parallel workers.

    Thread-safe: workers call ``ready`` to get work and ``done`` or ``failed`` to
    report it. A failure skips every selected node downstream of it.
    """

    def __init__(self, dag: Dag, names: Iterable[str]):
        self._dag = dag
        self._lock = threading.Lock()
        self._selected = set(dag.order(names))
        parents = dag._selected_parents(self._selected)
        self._waiting_on = {name: len(found) for name, found in parents.items()}
        self._dependents: dict[str, list[str]] = {name: [] for name in self._selected}
        for name, found in parents.items():
            for parent in found:
                self._dependents[parent].append(name)
        self._ready = [dag._position[name] for name, count in self._waiting_on.items() if count == 0]
        heapq.heapify(self._ready)
        self.running: set[str] = set()
        self.completed: set[str] = set()
        self.failures: set[str] = set()
        self.skipped: set[str] = set()

    def ready(self) -> list[str]:
        """Nodes whose selected dependencies are all done, each handed out only once."""
        with self._lock:
            names: list[str] = []
            while self._ready:
                name = self._dag._order[heapq.heappop(self._ready)]
                if name not in self.skipped:
                    names.append(name)
            self.running.update(names)
            return names

    def done(self, name: str) -> None:
        """Record that ``name`` succeeded, which may make its dependents ready."""
        with self._lock:
            self._finish(name)
            self.completed.add(name)
            for child in self._dependents[name]:
                self._waiting_on[child] -= 1
                if self._waiting_on[child] == 0:
                    heapq.heappush(self._ready, self._dag._position[child])

    def failed(self, name: str) -> set[str]:
        """Record that ``name`` failed; return the selected nodes skipped because of it."""
        with self._lock:
            self._finish(name)
            self.failures.add(name)
            skipped = (self._dag.downstream(name) & self._selected) - self.skipped
            self.skipped |= skipped
            return skipped

    def finished(self) -> bool:
        """True when every selected node has succeeded, failed or been skipped."""
        with self._lock:
            return len(self.completed) + len(self.failures) + len(self.skipped) == len(self._selected)

    def _finish(self, name: str) -> None:
        if name not in self.running:
            raise ValueError(f'"{name}" was not handed out by this scheduler, or was already reported')
        self.running.remove(name)
