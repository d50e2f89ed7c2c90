"""dbt generic tests, each way dbt writes them, as Conveyor tests; what has no Conveyor meaning is refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml

from conveyor.dbtimport import generic
from conveyor.dbtimport.generic import Disabled, convert_test
from conveyor.dbtimport.jinja import Call, NotConverted
from conveyor.design import tests as design_tests


def _resolve(call: Call) -> str:
    if call.name == "ref" and call.args == ("customers",):
        return "marts.customers"
    if call.name == "source":
        return ".".join(call.args)
    raise NotConverted(f"ref({call.args[0]!r}): no such model")


CONVERTS: list[tuple[str, str | None, Any]] = [
    ("- unique", "id", "unique"),
    ("- not_null", "id", "not_null"),
    ("- not_null:", "id", "not_null"),
    ("- not_null: {config: {severity: WARN}}", "id", {"not_null": {"severity": "warn"}}),
    ("- not_null: {severity: error, where: 'id > 0'}", "id", {"not_null": {"where": "id > 0"}}),
    ("- unique: {config: {where: x is not null, name: uq}}", "x", {"unique": {"where": "x is not null", "name": "uq"}}),
    ("- accepted_values: {values: [a, b]}", "s", {"accepted_values": {"values": ["a", "b"]}}),
    ("- accepted_values: {arguments: {values: [1, 2]}}", "s", {"accepted_values": {"values": [1, 2]}}),
    (
        "- accepted_values: {values: ['1', \"'x'\", 'true', '2.50'], quote: false}",
        "s",
        {"accepted_values": {"values": [1, "x", True, Decimal("2.50")]}},
    ),
    (
        "- relationships: {to: ref('customers'), field: id, severity: warn}",
        "customer_id",
        {"relationships": {"to": "marts.customers", "field": "id", "severity": "warn"}},
    ),
    (
        "- relationships: {to: \"source('shop', 'c')\", field: id}",
        "c_id",
        {"relationships": {"to": "shop.c", "field": "id"}},
    ),
    ("- unique: {column_name: a}", None, {"unique": {"column": "a"}}),
    ("- unique: {column_name: a || b}", None, {"unique": {"expression": "a || b"}}),
    ("- not_null: {store_failures: true, tags: [x], meta: {a: 1}}", "id", "not_null"),
    ("- not_null: {config: {warn_if: '!=0', error_if: '!= 0'}}", "id", "not_null"),
]

REFUSED: list[tuple[str, str | None, str]] = [
    ("- dbt_utils.not_null_proportion: {at_least: 0.9}", "a", "not one of the generic tests"),
    ("- my_custom_test", "a", "not one of the generic tests"),
    ("- unique", None, "needs column_name"),
    ("- accepted_values: {values: []}", "a", "needs a list of values"),
    ("- accepted_values: {values: [upper(x)], quote: false}", "a", "SQL expression"),
    ("- relationships: {to: ref('missing'), field: id}", "a", "no such model"),
    ("- relationships: {to: some_table, field: id}", "a", "only ref() and source()"),
    ("- not_null: {config: {severity: fatal}}", "a", "neither warn nor error"),
    ("- not_null: {config: {error_if: '>10'}}", "a", "error_if"),
    ("- not_null: {config: {where: \"{{ var('x') }}\"}}", "a", "Jinja"),
    ("- not_null: {flavour: x}", "a", '"flavour"'),
    ("- {unique: {}, not_null: {}}", "a", "one key"),
]


@pytest.mark.parametrize(("written", "column", "expected"), CONVERTS)
def test_converts(written: str, column: str | None, expected: Any) -> None:
    (entry,) = yaml.safe_load(written)
    converted = convert_test(entry, column, _resolve)
    assert converted == expected
    design_tests.TestEntry.model_validate(converted)


@pytest.mark.parametrize(("written", "column", "reason"), REFUSED)
def test_refused_with_the_reason(written: str, column: str | None, reason: str) -> None:
    (entry,) = yaml.safe_load(written)
    with pytest.raises(generic.TestNotConverted) as caught:
        convert_test(entry, column, _resolve)
    assert reason in str(caught.value)


def test_a_disabled_test_is_left_out() -> None:
    with pytest.raises(Disabled):
        convert_test({"unique": {"config": {"enabled": False}}}, "a", _resolve)
