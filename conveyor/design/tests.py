"""The data tests of a design: what correct data looks like, checked before it is published.

A test is written in a design's ``tests:`` list (relation tests) or in a column's
``tests:`` list (the column is implied), the way dbt writes them::

    columns:
      - name: status
        tests:
          - not_null
          - accepted_values: {values: [placed, shipped], severity: warn}
          - relationships: {to: shop.customers, field: id}
    tests:
      - expression: "amount >= 0"
      - unique: {columns: [customer_id, day]}
      - row_count: {min: 1}
      - row_count_change: {max_drop: 20%}

Every test takes ``severity`` (``error``, the default, fails the relation and keeps it from
being published; ``warn`` is reported and recorded), ``where`` (a SQL filter: only matching
rows are tested) and ``name`` (how results name it; a readable default is made up).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from conveyor.config.base import StrictModel

Severity = Literal["error", "warn"]

TEST_KINDS = ("not_null", "unique", "accepted_values", "relationships", "expression", "row_count", "row_count_change")
"""Every kind of generic test, in the order they are documented."""


class TestArgs(StrictModel):
    """What every test takes."""

    severity: Severity = Field(
        default="error", description="error: a failure fails the relation (not published); warn: reported only."
    )
    where: str | None = Field(default=None, description="A SQL filter: only the rows it keeps are tested.")
    name: str | None = Field(default=None, description="How results name this test (default: made from its kind).")


class Target(TestArgs):
    """A test of one column, or of a SQL expression over the row."""

    column: str | None = Field(default=None, description="The column tested (implied in a column's tests).")
    expression: str | None = Field(default=None, description="A SQL expression tested instead of a column.")


class NotNull(Target):
    """No row has NULL in the column (or expression)."""


class Unique(Target):
    """No two rows share a value of the column, the columns or the expression (NULLs are not compared)."""

    columns: list[str] | None = Field(default=None, description="Columns unique together.")


class AcceptedValues(Target):
    """Every non-NULL value is one of ``values``."""

    values: list[str | int | Decimal | bool] = Field(
        min_length=1, description="The values allowed, as YAML scalars of the column's type."
    )


class Relationships(Target):
    """Every non-NULL value exists in ``field`` of the relation ``to`` (a foreign key)."""

    to: str = Field(description='The relation referenced, "schema.table".')
    field: str = Field(description="Its column that holds the referenced values.")


class Expression(TestArgs):
    """A boolean SQL predicate every row must satisfy (NULL counts as not satisfied)."""

    sql: str = Field(min_length=1, description="The predicate, in the warehouse's SQL.")

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, value: object) -> object:
        return {"sql": value} if isinstance(value, str) else value


class RowCount(TestArgs):
    """The relation holds between ``min`` and ``max`` rows."""

    min: int | None = Field(default=None, ge=0, description="Fewest rows allowed.")
    max: int | None = Field(default=None, ge=0, description="Most rows allowed.")


class RowCountChange(TestArgs):
    """The row count moves by at most so much against the currently published relation."""

    max_drop: str | None = Field(default=None, description='Largest drop allowed, e.g. "20%".')
    max_growth: str | None = Field(default=None, description='Largest growth allowed, e.g. "50%".')

    @field_validator("max_drop", "max_growth", mode="before")
    @classmethod
    def _percent(cls, value: object) -> object:
        if value is None:
            return value
        text = str(value).strip()
        try:
            number = Decimal(text.removesuffix("%"))
        except ArithmeticError:
            number = Decimal(-1)
        if not text.endswith("%") or number < 0:
            raise ValueError(f'"{value}" is not a percentage; write it like "20%"')
        return text


def percent(text: str) -> Decimal:
    """``"20%"`` -> ``Decimal("0.2")``."""
    return Decimal(text.removesuffix("%")) / 100


class TestEntry(StrictModel):
    """One test: exactly one of its keys, e.g. ``not_null`` or ``accepted_values: {values: [...]}``."""

    not_null: NotNull | None = Field(default=None, description="No NULLs.")
    unique: Unique | None = Field(default=None, description="No duplicates.")
    accepted_values: AcceptedValues | None = Field(default=None, description="Only these values.")
    relationships: Relationships | None = Field(default=None, description="Every value exists in another relation.")
    expression: Expression | None = Field(default=None, description="A predicate every row satisfies.")
    row_count: RowCount | None = Field(default=None, description="Bounds on the number of rows.")
    row_count_change: RowCountChange | None = Field(
        default=None, description="Bounds on the change against the published relation."
    )

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: object) -> object:
        # "- not_null" is "- not_null: {}"; "- not_null:" (YAML null) too
        if isinstance(value, str):
            return {value: {}}
        if isinstance(value, dict):
            return {key: ({} if item is None else item) for key, item in value.items()}
        return value

    @model_validator(mode="after")
    def _one(self) -> TestEntry:
        given = [kind for kind in TEST_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"a test has exactly one kind ({', '.join(TEST_KINDS)}); this one has {len(given)}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in TEST_KINDS if getattr(self, kind) is not None)

    @property
    def args(self) -> TestArgs:
        found: TestArgs = getattr(self, self.kind)
        return found


class Freshness(StrictModel):
    """How old a source table's newest data may be (``conveyor freshness``)."""

    warn_after: str | None = Field(default=None, description='Warn when older than this, e.g. "12 hours".')
    error_after: str | None = Field(default=None, description='Fail when older than this, e.g. "1 day".')
    measure: Literal["cursor", "extract"] = Field(
        default="cursor",
        description="cursor: the newest value of the incremental cursor in the lake (tables without one "
        "fall back to extract); extract: when the last successful extract started.",
    )
