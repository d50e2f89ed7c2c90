"""The Jinja of a model: ref()/source() written any way dbt accepts become the same names; anything else is
reported with its line, never guessed at."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.dbtimport.jinja import Call, NotConverted, parse_call, render

NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
SPACE = st.sampled_from(["", " ", "  ", "\t", "\n", " \n  "])
QUOTE = st.sampled_from(["'", '"'])


def _resolve(call: Call, line: int) -> str:
    if call.name == "ref":
        return f"m.{call.args[-1]}"
    if call.name == "source":
        return f"{call.args[0]}.{call.args[1]}"
    raise NotConverted("no")


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, str]:
    """A ref() or source() call written with random spacing and quotes, and the name it resolves to."""
    kind = draw(st.sampled_from(["ref", "ref2", "source"]))
    args = [draw(NAMES) for _ in range(1 if kind == "ref" else 2)]
    written = [f"{q}{a}{q}" for a, q in zip(args, [draw(QUOTE) for _ in args], strict=True)]
    gap = [draw(SPACE) for _ in range(6)]
    separator = f"{gap[3]},{gap[4]}"
    function = "source" if kind == "source" else "ref"
    text = f"{function}{gap[1]}({gap[2]}{separator.join(written)}{gap[5]})"
    expected = f"{args[0]}.{args[1]}" if kind == "source" else f"m.{args[-1]}"
    return text, expected


@settings(max_examples=300, deadline=None)
@given(
    calls(),
    SPACE,
    SPACE,
    st.sampled_from(["", "-"]),
    st.sampled_from(["", "-"]),
    st.sampled_from(["select * from", "join"]),
)
def test_every_spelling_of_ref_and_source_resolves(
    call: tuple[str, str], inner_left: str, inner_right: str, trim_left: str, trim_right: str, before: str
) -> None:
    text, expected = call
    sql = f"{before} {{{{{trim_left}{inner_left} {text} {inner_right}{trim_right}}}}} as t\nwhere 1 = 1"
    rendered = render(sql, _resolve)
    assert rendered.unsupported == []
    # whitespace control removes the whitespace, but keeps the SQL tokens apart
    assert rendered.sql == f"{before} {expected} as t\nwhere 1 = 1"


@pytest.mark.parametrize(
    ("sql", "line", "reason"),
    [
        ("select 1\n{% if x %}where a{% endif %}", 2, "Jinja statement {% if x %}"),
        ("select {{ var('x') }}", 1, "Jinja expression {{ var('x') }}"),
        ("select * from {{ ref('a') ~ 'b' }}", 1, "Jinja expression {{ ref('a') ~ 'b' }}"),
        ("select * from {{ ref(name) }}", 1, "Jinja expression {{ ref(name) }}"),
        ("select * from {{ this }}", 1, "Jinja expression {{ this }}"),
        ("select 1\n\n{{ dbt_utils.star(ref('a')) }}", 3, "Jinja expression {{ dbt_utils.star(ref('a')) }}"),
        ("select * from {{ ref('a'", 1, '"{{" is never closed'),
        ("select * from {{ other('a') }}", 1, "Jinja expression {{ other('a') }}"),
    ],
)
def test_other_jinja_is_reported_with_its_line(sql: str, line: int, reason: str) -> None:
    rendered = render(sql, _resolve)
    assert [(u.line, u.reason) for u in rendered.unsupported][:1] == [(line, reason)]


def test_config_is_taken_out_and_comments_become_sql_comments() -> None:
    rendered = render(
        "{{ config(materialized='table', tags=['a', 'b'], enabled=true) }}\n{# why #}\nselect 1", _resolve
    )
    assert rendered.unsupported == []
    assert rendered.config == {"materialized": "table", "tags": ["a", "b"], "enabled": True}
    assert rendered.config_line == 1
    assert rendered.sql == "\n/* why */\nselect 1"


def test_parse_call_takes_only_literal_arguments() -> None:
    assert parse_call(" ref( 'a' , \"b\" ) ") == Call("ref", ("a", "b"), {})
    assert parse_call("ref('a', v=2)") == Call("ref", ("a",), {"v": 2})
    assert parse_call("ref(f'a')") is None
    assert parse_call("ref(**x)") is None
    assert parse_call("a.b('x')") is None
