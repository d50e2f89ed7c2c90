"""What bootstrap plans before it writes anything: each upstream table, and each file to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conveyor.bootstrap.report import TableReport
from conveyor.project import Relation
from conveyor.warehouse.base import Warehouse


@dataclass(frozen=True)
class DecimalLimit:
    """The widest decimal every configured environment holds, and which environment sets it."""

    precision: int = Warehouse.MAX_DECIMAL_PRECISION
    holder: str = "every warehouse"


#: tables with more rows than this get a comment noting the estimate in their new design
LARGE_TABLE_ROWS = 5_000_000


@dataclass
class Upstream:
    """One upstream table of a source and the warehouse name its design gets."""

    schema: str
    table: str
    name: str
    matched: bool
    designs: list[Relation] = field(default_factory=list)
    renamed_because: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class Write:
    path: Path
    text: str
    report: TableReport
    mode: int | None = None


@dataclass
class SourcePlan:
    name: str
    target: str
    reports: list[TableReport] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    opened: bool = False
    limit: DecimalLimit = field(default_factory=lambda: DecimalLimit())
    odd: list[str] = field(default_factory=list)
    """Columns written without their exact type (``pg.docs.search (tsvector) as text``)."""
