"""The seed CSV parser: records and their lines, NULL against the empty string, exact conversions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.design.types import parse_type
from conveyor.sources.seed import guess_type
from conveyor.sources.seedcsv import SeedError, converter, records

pieces = st.sampled_from(["a", "b", " ", ",", '"', "\n", "\r\n", "é"])
cells = st.none() | st.lists(pieces, max_size=6).map("".join)
grids = st.lists(st.lists(cells, min_size=2, max_size=2), min_size=1, max_size=6)


def _field(value: str | None, always: bool) -> str:
    if value is None:
        return ""
    if always or value == "" or any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


@settings(max_examples=200)
@given(grid=grids, always=st.booleans(), ending=st.sampled_from(["\n", "\r\n"]), last=st.booleans())
def test_records_keep_fields_nulls_and_the_line_each_starts_on(
    grid: list[list[str | None]], always: bool, ending: str, last: bool
) -> None:
    lines = [",".join(_field(v, always) for v in row) for row in grid]
    text = ending.join(lines) + (ending if last else "")
    starts, line = [], 1
    for written in lines:
        starts.append(line)
        line += written.count("\n") + 1
    found = list(records(text, "x.csv"))
    assert [r.fields for r in found] == grid
    assert [r.line for r in found] == starts


@pytest.mark.parametrize("text", ['a"b,c\n', '"a"b,c\n', '"never closed,c\n'])
def test_bad_quoting_is_an_error_with_its_line(text: str) -> None:
    with pytest.raises(SeedError) as caught:
        list(records("h1,h2\n" + text, "x.csv"))
    assert str(caught.value.location) == "x.csv:2"


@given(
    value=st.decimals(min_value=-(10**20), max_value=10**20, allow_nan=False, allow_infinity=False),
    scale=st.integers(0, 6),
)
def test_a_decimal_is_taken_only_when_the_scale_holds_it_exactly(value: Decimal, scale: int) -> None:
    text = format(value, "f")
    parse = converter(parse_type(f"decimal(38,{scale})"))
    exact = value == value.quantize(Decimal(1).scaleb(-scale))
    try:
        parsed = parse(text)
    except ValueError as exc:
        assert exact is False, exc
        assert "not rounded" in str(exc)
    else:
        assert exact is True and parsed == value and parsed.as_tuple().exponent == -scale


@pytest.mark.parametrize(
    ("type_text", "value", "parsed"),
    [
        ("integer", "-2147483648", -2147483648),
        ("utinyint", "255", 255),
        ("boolean", "TRUE", True),
        ("double", "1e-3", 0.001),
        ("varchar(3)", "abc", "abc"),
        ("bytes", "\\x00ff", b"\x00\xff"),
    ],
)
def test_values_convert_exactly(type_text: str, value: str, parsed: object) -> None:
    assert converter(parse_type(type_text))(value) == parsed


@pytest.mark.parametrize(
    ("type_text", "value"),
    [
        ("integer", "2147483648"),
        ("integer", "1_000"),
        ("integer", " 1"),
        ("decimal(4,2)", "123.4"),
        ("decimal(10,2)", "1e3"),
        ("varchar(3)", "abcd"),
        ("date", "2024-1-1"),
        ("time", "10:00:00.0000001"),
        ("timestamp", "2024-01-01 10:00:00+00:00"),
        ("timestamptz", "2024-01-01 10:00:00"),
        ("json", "{"),
        ("bytes", "00ff"),
    ],
)
def test_values_that_do_not_fit_are_refused(type_text: str, value: str) -> None:
    with pytest.raises(ValueError):
        converter(parse_type(type_text))(value)


def test_types_are_guessed_for_bootstrap() -> None:
    assert str(guess_type(["1", "-2"])) == "integer"
    assert str(guess_type(["1.5", "20.25"])) == "decimal(18,2)"
    assert str(guess_type(["2024-01-01 10:00:00Z"])) == "timestamptz"
    assert str(guess_type(["true", "False"])) == "boolean"
    assert str(guess_type(["a", "1"])) == "text"
