"""The models behind ``schemas/<schema>/<table>.yaml``: one table design per relation.

A design describes one relation in the warehouse: a source table (loaded from the lake),
a CTAS (a table built from the SQL file beside the design) or a VIEW. Every key is
documented here and exported by ``conveyor schema``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from conveyor.config.settings import StrictModel
from conveyor.design.tests import Freshness, TestEntry
from conveyor.design.types import SqlType, parse_type

Kind = Literal["source", "ctas", "view"]


class ColumnDesign(StrictModel):
    """One column of a relation."""

    name: str = Field(min_length=1, description="Column name, as in the warehouse.")
    type: str | None = Field(
        default=None,
        description="Design type: boolean, smallint, integer, bigint, ubigint, decimal(p,s), real, double, "
        "text, varchar(n), date, time, timestamp, timestamptz, uuid, json, bytes, or T[] for arrays. "
        "Views leave it out.",
    )
    not_null: bool = Field(default=False, description="The column never holds NULL; checked before publishing.")
    description: str | None = Field(default=None, description="Becomes the column comment in the warehouse.")
    skipped: bool = Field(default=False, description="Not extracted and not loaded (e.g. a sensitive column).")
    identity: bool = Field(default=False, description="An identity column (must also be not_null).")
    tests: list[TestEntry] = Field(
        default_factory=list, description="Data tests of this column, run before publishing (docs/tests.md)."
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None:
            parse_type(value)
        return value

    @property
    def sql_type(self) -> SqlType:
        """The parsed type; only valid for columns that have one."""
        if self.type is None:
            raise ValueError(f'column "{self.name}" has no type')
        return parse_type(self.type)


class Constraints(StrictModel):
    """Keys checked before a build is published."""

    primary_key: list[str] = Field(default_factory=list, description="Columns that are unique and not null.")
    unique: list[list[str]] = Field(default_factory=list, description="Column lists that are unique.")
    natural_key: list[str] = Field(default_factory=list, description="The business key; unique when present.")


class Incremental(StrictModel):
    """Incremental extraction: read only rows past the committed high-water mark."""

    cursor: str = Field(description="A column that grows with every insert or update (e.g. updated_at).")
    lag: str | int | None = Field(
        default=None,
        description='Overlap re-read before the watermark: a number for numeric cursors, or "1 hour" style '
        "intervals for timestamps.",
    )


class ExtractSettings(StrictModel):
    """How a source table is extracted."""

    split_by: str | None = Field(default=None, description="A not-null key to split the table into partitions.")
    partitions: int | None = Field(default=None, ge=1, le=1024, description="Fixed partition count.")
    condition: str | None = Field(default=None, description="A SQL predicate in the source's dialect.")
    incremental: Incremental | None = Field(default=None, description="Incremental extraction settings.")
    job_type: Literal["arrow", "command", "spark"] | None = Field(
        default=None, description="Overrides the source's job type for this table."
    )
    command: str | None = Field(default=None, description="For job_type command: the program to run, as a template.")


class TableDesign(StrictModel):
    """One relation: a source table, a CTAS or a VIEW."""

    name: str = Field(description='"schema.table"; must match the file\'s path schemas/<schema>/<table>.yaml.')
    kind: Kind | None = Field(
        default=None,
        description="source, ctas or view. Defaults to source in a source's schema and to ctas elsewhere.",
    )
    description: str | None = Field(default=None, description="Becomes the table comment in the warehouse.")
    source_table: str | None = Field(
        default=None,
        description='For source tables: the upstream "schema.table"; defaults to the table name in the '
        'source\'s default schema. Quote a part that holds a dot or a quote, as SQL does: public."dotted.name".',
    )
    columns: list[ColumnDesign] = Field(default_factory=list, description="The columns, in order.")
    partial_columns: bool = Field(
        default=False,
        description="CTAS and views: the design lists only some of the columns its SQL produces, in any order. "
        "The others are built with the types the warehouse infers; a listed column with a type is cast to it.",
    )
    constraints: Constraints = Field(default_factory=Constraints, description="Keys checked before publishing.")
    extract: ExtractSettings = Field(default_factory=ExtractSettings, description="Extract settings (source tables).")
    tests: list[TestEntry] = Field(
        default_factory=list, description="Data tests of the relation, run before publishing (docs/tests.md)."
    )
    freshness: Freshness | None = Field(
        default=None, description="Source tables: how old their newest data may be (conveyor freshness)."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Extra dependencies that the SQL cannot show (CTAS and views)."
    )
    tags: list[str] = Field(default_factory=list, description="Labels for selection with tag:<name>.")
    attributes: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Warehouse-specific physical attributes (e.g. Redshift distkey, sortkey).",
    )

    @field_validator("name")
    @classmethod
    def _qualified(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f'name "{value}" must be "schema.table"')
        return value

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, value: list[ColumnDesign]) -> list[ColumnDesign]:
        seen: set[str] = set()
        for column in value:
            if column.name in seen:
                raise ValueError(f'column "{column.name}" appears twice')
            seen.add(column.name)
        return value

    @property
    def schema_name(self) -> str:
        return self.name.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.name.split(".")[1]

    @property
    def typed(self) -> bool:
        """Whether a table can be created from the design alone: every column listed, each with a type."""
        columns = self.loaded_columns
        return bool(columns) and not self.partial_columns and all(c.type for c in columns)

    @property
    def loaded_columns(self) -> list[ColumnDesign]:
        """Columns that are extracted and loaded (not skipped)."""
        return [c for c in self.columns if not c.skipped]
