"""The lineage page's graph: a bounded neighbourhood of one relation, laid out in columns.

A project may hold thousands of relations; the page never draws them all. It shows one
relation (the focus), its upstream up to ``up`` steps away and its downstream up to ``down``
steps, at most :data:`MAX_SIDE` relations on each side (nearest first), and says on each
relation how many of its parents and children are left out. Search is a filter over the names
that returns at most ``limit`` of them.

Layout (computed here, drawn as SVG by static/lineage.js): columns by layer, so that every
edge goes left to right (an upstream relation sits left of every relation it feeds, the
longest path deciding), and within a column the relations grouped by schema, then by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.errors import UserError, did_you_mean
from conveyor.graph.dag import Dag
from conveyor.tracking.models import EventRow

MAX_DEPTH = 10
MAX_SIDE = 150
"""Relations shown upstream, and downstream, of the focus at most."""
SEARCH_LIMIT = 50
MAX_SEARCH_LIMIT = 200

NODE_W = 210
NODE_H = 24
COLUMN_GAP = 70
ROW_GAP = 6
GROUP_GAP = 24
"""Room above a schema's group in a column, for its name."""
MARGIN = 36
"""Room around the drawing: the +N of the leftmost column's hidden parents goes in it."""
NAME_CHARS = 28
"""Characters of a name drawn in its box (a longer name is cut with …; its tooltip has it whole)."""


@dataclass(frozen=True)
class Lineage:
    """The project's DAG as the page reads it: names, schemas, kinds, parents and children."""

    dag: Dag
    names: tuple[str, ...]
    folded: tuple[str, ...]
    """The names in lower case, for search."""

    @classmethod
    def of(cls, dag: Dag) -> Lineage:
        names = tuple(sorted(dag.nodes))
        return cls(dag, names, tuple(n.lower() for n in names))

    def require(self, name: str) -> None:
        """Raises UserError: no relation of the project has that name."""
        if name not in self.dag.nodes:
            raise UserError(
                f'the project has no relation "{name}".' + did_you_mean(name, self.names),
                hint="Search the lineage page for it, or give a name such as schema.table.",
            )

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> tuple[list[dict[str, str]], int]:
        """Relations whose name contains ``query`` (any case): names that start with it, or whose
        table does, first; at most ``limit`` of them, and how many match in all."""
        needle = query.strip().lower()
        first: list[int] = []
        rest: list[int] = []
        for index, name in enumerate(self.folded):
            if needle in name:
                table = name.split(".", 1)[-1]
                (first if name.startswith(needle) or table.startswith(needle) else rest).append(index)
        found = (first + rest)[:limit]
        shown = [self.names[i] for i in found]
        return [{"name": n, "schema": schema_of(n), "kind": self.dag.nodes[n].kind} for n in shown], len(first) + len(
            rest
        )

    def neighbourhood(self, focus: str, up: int, down: int) -> tuple[list[str], list[str], bool]:
        """The relations upstream and downstream of ``focus`` to show (nearest first, at most
        :data:`MAX_SIDE` each), and whether some were left out for the cap."""
        self.require(focus)
        ups, cut_up = _reach(focus, self.dag.parents, up)
        downs, cut_down = _reach(focus, self.dag.children, down)
        return ups, downs, cut_up or cut_down

    def graph(self, focus: str, up: int, down: int, last: Mapping[str, EventRow]) -> dict[str, Any]:
        """What ``/api/lineage`` returns: the neighbourhood's nodes placed in columns, its edges,
        the schema groups' labels and the drawing's size. ``last`` is each relation's newest event."""
        ups, downs, capped = self.neighbourhood(focus, up, down)
        shown = {focus, *ups, *downs}
        layer = _layers(self.dag, focus, ups, downs)
        columns: dict[int, list[str]] = {}
        for name in shown:
            columns.setdefault(layer[name], []).append(name)
        first = min(columns)
        nodes: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        height = 0
        for column, members in sorted(columns.items()):
            x = MARGIN + (column - first) * (NODE_W + COLUMN_GAP)
            y = MARGIN
            schema = None
            for name in sorted(members, key=lambda n: (schema_of(n), n)):
                if schema_of(name) != schema:
                    schema = schema_of(name)
                    groups.append({"schema": schema, "x": x, "y": y + GROUP_GAP - 8})
                    y += GROUP_GAP
                parents, children = self.dag.parents(name), self.dag.children(name)
                event = last.get(name)
                nodes.append({
                    "name": name, "schema": schema, "kind": self.dag.nodes[name].kind, "layer": column,
                    "x": x, "y": y, "label": name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…",
                    "status": event.status if event else "none",
                    "last": None if event is None else {
                        "step": event.step, "run_id": event.run_id, "status": event.status,
                        "at": event.started_at.isoformat(timespec="seconds"),
                    },
                    "hidden_up": sum(1 for p in parents if p not in shown),
                    "hidden_down": sum(1 for c in children if c not in shown),
                })  # fmt: skip
                y += NODE_H + ROW_GAP
            height = max(height, y)
        edges = [[p, name] for name in sorted(shown) for p in self.dag.parents(name) if p in shown]
        return {
            "focus": focus, "up": up, "down": down, "nodes": nodes, "edges": edges, "groups": groups,
            "width": MARGIN * 2 + len(columns) * NODE_W + (len(columns) - 1) * COLUMN_GAP,
            "height": height + MARGIN, "node_w": NODE_W, "node_h": NODE_H, "capped": capped,
            "upstream": len(ups), "downstream": len(downs), "relations": len(self.names),
            "parents": self.dag.parents(focus), "children": self.dag.children(focus),
        }  # fmt: skip


def schema_of(name: str) -> str:
    return name.split(".", 1)[0] if "." in name else ""


def _reach(start: str, step: Any, depth: int) -> tuple[list[str], bool]:
    """Relations at most ``depth`` steps from ``start`` along ``step`` (parents or children),
    nearest first (then by name), at most MAX_SIDE; and whether the cap left some out."""
    seen = {start}
    found: list[str] = []
    level = [start]
    for _ in range(depth):
        following = sorted({n for name in level for n in step(name) if n not in seen})
        for name in following:
            if len(found) == MAX_SIDE:
                return found, True
            seen.add(name)
            found.append(name)
        level = following
        if not level:
            break
    return found, False


def _layers(dag: Dag, focus: str, ups: Iterable[str], downs: Iterable[str]) -> dict[str, int]:
    """Each shown relation's column: the focus at 0, upstream ones at minus their longest path to
    it, downstream ones at their longest path from it (through shown relations), so every edge
    among them goes left to right."""
    levels = dag.levels()
    layer = {focus: 0}
    up_set, down_set = set(ups), set(downs)
    for name in sorted(down_set, key=lambda n: levels[n]):  # parents before children
        layer[name] = max((layer[p] + 1 for p in dag.parents(name) if p in layer), default=1)
    for name in sorted(up_set, key=lambda n: -levels[n]):  # children before parents
        layer[name] = min((layer[c] - 1 for c in dag.children(name) if c in layer and c not in down_set), default=-1)
    return layer
