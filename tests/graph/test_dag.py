"""Tests for the relation DAG and its parallel scheduler."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from conveyor.errors import DependencyError
from conveyor.graph.dag import Dag, Node

#        s.a   s.b
#          \  /   \
#          m.c    m.d
#            \    /
#             r.e        x.lone
EDGES = [("s.a", "m.c"), ("s.b", "m.c"), ("s.b", "m.d"), ("m.c", "r.e"), ("m.d", "r.e")]


def make(edges: list[tuple[str, str]] = EDGES, extra: tuple[str, ...] = ("x.lone",)) -> Dag:
    names = sorted({n for edge in edges for n in edge} | set(extra))
    return Dag([Node(n, "view") for n in names], edges)


def test_order_is_by_level_then_name() -> None:
    assert make().order() == ["s.a", "s.b", "x.lone", "m.c", "m.d", "r.e"]


def test_order_ignores_input_order() -> None:
    assert make(list(reversed(EDGES))).order() == make().order()


def test_order_of_subset_keeps_global_order() -> None:
    assert make().order(["r.e", "s.b", "m.c"]) == ["s.b", "m.c", "r.e"]


def test_order_of_unknown_name_is_an_error() -> None:
    with pytest.raises(DependencyError, match=r'unknown relation "m\.cc"\. Did you mean "m\.c"'):
        make().order(["m.cc"])


def test_levels() -> None:
    assert make().levels() == {"s.a": 0, "s.b": 0, "x.lone": 0, "m.c": 1, "m.d": 1, "r.e": 2}


def test_level_is_longest_path() -> None:
    dag = make([("a.1", "a.2"), ("a.2", "a.3"), ("a.1", "a.3")], extra=())
    assert dag.levels()["a.3"] == 2


@pytest.mark.parametrize(
    ("name", "up", "down"),
    [
        ("r.e", {"s.a", "s.b", "m.c", "m.d"}, set()),
        ("s.b", set(), {"m.c", "m.d", "r.e"}),
        ("m.c", {"s.a", "s.b"}, {"r.e"}),
        ("x.lone", set(), set()),
    ],
)
def test_upstream_and_downstream(name: str, up: set[str], down: set[str]) -> None:
    dag = make()
    assert dag.upstream(name) == up
    assert dag.downstream(name) == down


def test_parents_and_children_are_sorted() -> None:
    dag = make()
    assert dag.parents("m.c") == ["s.a", "s.b"]
    assert dag.children("s.b") == ["m.c", "m.d"]


def test_duplicate_edges_are_harmless() -> None:
    dag = make([*EDGES, ("s.a", "m.c")])
    assert dag.parents("m.c") == ["s.a", "s.b"]


def test_unknown_node_in_edge_names_both_ends() -> None:
    with pytest.raises(DependencyError) as info:
        Dag([Node("s.a", "source")], [("s.a", "m.missing")])
    assert "s.a -> m.missing" in str(info.value)
    assert '"m.missing"' in str(info.value)


def test_duplicate_node_is_an_error() -> None:
    with pytest.raises(DependencyError, match=r'relation "s\.a" is defined twice'):
        Dag([Node("s.a", "source"), Node("s.a", "view")], [])


def test_empty_dag() -> None:
    dag = Dag([], [])
    assert dag.order() == []
    assert dag.scheduler([]).finished()


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ([("a.x", "a.y"), ("a.y", "a.z"), ("a.z", "a.x")], "dependency cycle: a.x -> a.y -> a.z -> a.x"),
        ([("a.y", "a.z"), ("a.z", "a.x"), ("a.x", "a.y")], "dependency cycle: a.x -> a.y -> a.z -> a.x"),
        ([("a.x", "a.x")], "dependency cycle: a.x -> a.x"),
        # a node feeding a cycle is not part of the reported cycle
        ([("a.a", "a.x"), ("a.x", "a.y"), ("a.y", "a.x"), ("a.y", "a.q")], "dependency cycle: a.x -> a.y -> a.x"),
    ],
)
def test_cycle_message_shows_whole_path(edges: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(DependencyError) as info:
        make(edges, extra=())
    assert str(info.value) == message


def test_long_chain_has_no_recursion_limit() -> None:
    names = [f"a.n{i:05d}" for i in range(10_000)]
    edges = list(itertools.pairwise(names))
    dag = Dag([Node(n, "view") for n in names], edges)
    assert dag.order() == names
    assert len(dag.upstream(names[-1])) == 9_999
    with pytest.raises(DependencyError, match=r"^dependency cycle: a.n00000 -> a.n00001 -> .* -> a.n00000$"):
        Dag([Node(n, "view") for n in names], [*edges, (names[-1], names[0])])


def test_thousand_nodes_order_respects_every_edge() -> None:
    # speed is measured by bench/dag, never by a timed test; this checks the result at that size
    names = [f"s{i % 10}.t{i:04d}" for i in range(1000)]
    edges = [(names[i], names[j]) for i in range(1000) for j in (i * 7 + 1, i * 13 + 2) if j < 1000 and j > i]
    order = Dag([Node(n, "ctas") for n in names], edges).order()
    position = {name: index for index, name in enumerate(order)}
    assert sorted(order) == sorted(names)
    assert all(position[up] < position[down] for up, down in edges)


# ---------------------------------------------------------------------- scheduler


def run_serially(dag: Dag, names: list[str], failing: frozenset[str] = frozenset()) -> tuple[list[list[str]], set[str]]:
    """Drive a scheduler the way the runner does; return the batches and skipped nodes."""
    scheduler = dag.scheduler(names)
    batches, skipped = [], set()
    while not scheduler.finished():
        batch = scheduler.ready()
        assert batch, "scheduler stalled"
        batches.append(batch)
        for name in batch:
            if name in failing:
                skipped |= scheduler.failed(name)
            else:
                scheduler.done(name)
    return batches, skipped


def test_scheduler_hands_out_by_dependency() -> None:
    batches, skipped = run_serially(make(), make().order())
    assert batches == [["s.a", "s.b", "x.lone"], ["m.c", "m.d"], ["r.e"]]
    assert skipped == set()


def test_scheduler_failure_skips_downstream() -> None:
    batches, skipped = run_serially(make(), make().order(), failing=frozenset({"s.a"}))
    assert skipped == {"m.c", "r.e"}
    assert batches == [["s.a", "s.b", "x.lone"], ["m.d"]]


def test_scheduler_subset_waits_through_unselected_nodes() -> None:
    # m.c is not selected, but r.e reads it, and m.c reads s.a: r.e must wait for s.a
    batches, _ = run_serially(make(), ["s.a", "r.e"])
    assert batches == [["s.a"], ["r.e"]]
    _, skipped = run_serially(make(), ["s.a", "r.e"], failing=frozenset({"s.a"}))
    assert skipped == {"r.e"}


def test_scheduler_hands_each_node_out_once() -> None:
    scheduler = make().scheduler(["s.a", "s.b"])
    assert scheduler.ready() == ["s.a", "s.b"]
    assert scheduler.ready() == []
    scheduler.done("s.a")
    with pytest.raises(ValueError, match="not handed out"):
        scheduler.done("s.a")
    assert not scheduler.finished()
    scheduler.done("s.b")
    assert scheduler.finished()


def test_scheduler_is_thread_safe() -> None:
    names = [f"a.n{i:03d}" for i in range(200)]
    edges = [(names[i], names[j]) for i in range(200) for j in (i + 1, i + 17) if j < 200]
    dag = Dag([Node(n, "view") for n in names], edges)
    scheduler = dag.scheduler(names)
    finished: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while not scheduler.finished():
            for name in scheduler.ready():
                with lock:
                    assert set(dag.parents(name)) <= set(finished)
                    finished.append(name)
                scheduler.done(name)
            time.sleep(0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(finished) == names
