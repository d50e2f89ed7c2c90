"""Tests for the selection syntax."""

from __future__ import annotations

import pytest

from conveyor.errors import SelectionError
from conveyor.graph.dag import Dag, Node
from conveyor.graph.selection import select

#  raw.orders -> sales.orders -> sales.daily -> mart.dim_day
#  raw.users  -> crm.users    -> mart.dim_user
NODES = [
    Node("raw.orders", "source"),
    Node("raw.users", "source"),
    Node("sales.orders", "ctas", frozenset({"daily", "finance"})),
    Node("sales.daily", "view", frozenset({"daily"})),
    Node("crm.users", "ctas", frozenset({"pii"})),
    Node("mart.dim_day", "view"),
    Node("mart.dim_user", "view", frozenset({"pii-export"})),
]
EDGES = [
    ("raw.orders", "sales.orders"),
    ("sales.orders", "sales.daily"),
    ("sales.daily", "mart.dim_day"),
    ("raw.users", "crm.users"),
    ("crm.users", "mart.dim_user"),
]
DAG = Dag(NODES, EDGES)
ALL = DAG.order()

CASES = [
    ("empty selects all", [], ALL),
    ("exact", ["sales.orders"], ["sales.orders"]),
    ("schema glob", ["sales.*"], ["sales.orders", "sales.daily"]),
    ("table glob", ["*.dim_*"], ["mart.dim_user", "mart.dim_day"]),
    ("bare schema", ["sales"], ["sales.orders", "sales.daily"]),
    ("bare schema glob", ["ra*"], ["raw.orders", "raw.users"]),
    ("tag", ["tag:daily"], ["sales.orders", "sales.daily"]),
    ("tag glob", ["tag:pii*"], ["crm.users", "mart.dim_user"]),
    ("upstream", ["+sales.daily"], ["raw.orders", "sales.orders", "sales.daily"]),
    ("downstream", ["sales.orders+"], ["sales.orders", "sales.daily", "mart.dim_day"]),
    ("both", ["+sales.daily+"], ["raw.orders", "sales.orders", "sales.daily", "mart.dim_day"]),
    ("upstream of tag", ["+tag:pii"], ["raw.users", "crm.users"]),
    ("union in execution order", ["mart.dim_user", "raw.orders"], ["raw.orders", "mart.dim_user"]),
    ("overlap counted once", ["sales", "sales.orders+"], ["sales.orders", "sales.daily", "mart.dim_day"]),
    ("comma intersects", ["tag:daily,sales.orders"], ["sales.orders"]),
    ("comma with spaces", ["+mart.dim_day , sales"], ["sales.orders", "sales.daily"]),
    ("intersection of a tag and a schema", ["tag:pii*,mart"], ["mart.dim_user"]),
    ("upstream depth 1", ["1+mart.dim_day"], ["sales.daily", "mart.dim_day"]),
    ("upstream depth 2", ["2+mart.dim_day"], ["sales.orders", "sales.daily", "mart.dim_day"]),
    ("downstream depth 1", ["raw.orders+1"], ["raw.orders", "sales.orders"]),
    ("both with depths", ["1+sales.daily+1"], ["sales.orders", "sales.daily", "mart.dim_day"]),
    ("at: downstream and all they need", ["@crm.users"], ["raw.users", "crm.users", "mart.dim_user"]),
    ("at on a middle relation", ["@sales.daily"], ["raw.orders", "sales.orders", "sales.daily", "mart.dim_day"]),
    ("exclude", ["sales.orders+", "!mart"], ["sales.orders", "sales.daily"]),
    (
        "exclude only: everything else",
        ["!raw", "!crm"],
        ["sales.orders", "mart.dim_user", "sales.daily", "mart.dim_day"],
    ),
    ("exclude an intersection", ["sales", "!tag:finance,sales"], ["sales.daily"]),
]


def test_an_empty_intersection_says_so() -> None:
    with pytest.raises(SelectionError, match=r"no relation is in all of crm, mart\.dim_day\. A comma intersects"):
        select(DAG, ["crm,mart.dim_day"])


@pytest.mark.parametrize("term", ["@sales.orders+", "+@x", "sales,!mart", "!", "2+"])
def test_malformed_new_syntax(term: str) -> None:
    with pytest.raises(SelectionError, match="malformed selection"):
        select(DAG, [term])


@pytest.mark.parametrize(("label", "terms", "expected"), CASES, ids=[c[0] for c in CASES])
def test_select(label: str, terms: list[str], expected: list[str]) -> None:
    assert select(DAG, terms) == expected


NO_MATCH = [
    ("sales.order", 'selection "sales.order" matches no relation. Did you mean "sales.orders"?'),
    ("+sales.ordrs+", 'selection "+sales.ordrs+" matches no relation. Did you mean "sales.orders"?'),
    ("sale", 'selection "sale" matches no relation. Did you mean "sales"?'),
    ("tag:dayly", 'selection "tag:dayly" matches no relation. Did you mean "tag:daily"?'),
    ("mart.DIM_*", 'selection "mart.DIM_*" matches no relation.'),
    ("zzz.qqq", 'selection "zzz.qqq" matches no relation.'),
]


@pytest.mark.parametrize(("term", "message"), NO_MATCH)
def test_no_match_suggests(term: str, message: str) -> None:
    with pytest.raises(SelectionError) as info:
        select(DAG, ["sales", term])
    assert str(info.value) == message + ' Run "conveyor ls" to see all relations.'


def test_no_match_suggests_extra_schemas() -> None:
    with pytest.raises(SelectionError, match='Did you mean "finance"'):
        select(DAG, ["financ"], schemas=["finance"])


@pytest.mark.parametrize("term", ["", "+", "++", "++x", "x++", "+a+b", "tag:", "+tag:", "a,,b", "sales .x"])
def test_malformed_terms(term: str) -> None:
    with pytest.raises(SelectionError, match="malformed selection"):
        select(DAG, [term])
