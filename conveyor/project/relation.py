"""One relation of a project: a source table or a transformation, with its design and SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.config.yamlfile import YamlDoc
from conveyor.design.models import Kind, TableDesign
from conveyor.errors import (
    Location,
)
from conveyor.graph.refs import TableRef

if TYPE_CHECKING:
    from sqlglot import exp


@dataclass
class Relation:
    """One relation of the project, with everything needed to extract, load or build it."""

    design: TableDesign
    doc: YamlDoc
    kind: Kind
    sql: str | None = None
    sql_path: Path | None = None
    source: str | None = None
    dependencies: list[str] = field(default_factory=list)
    references: list[TableRef] | None = None
    """Every table the SQL reads, with its position in the SQL file (None: no SQL, or it does not parse)."""
    sql_dependencies: list[str] = field(default_factory=list)
    """The relations the SQL reads; ``dependencies`` adds those of ``depends_on``."""
    external: list[str] = field(default_factory=list)
    """Tables outside the project the SQL reads: matched by ``external`` in conveyor.yaml, or catalog-qualified."""
    select_names: list[str] | None = None
    """The output column names when the query's select list is explicit (no ``*``, every expression named)."""
    unparsed: str | None = None
    """Why sqlglot cannot parse the SQL, which the warehouse may accept: it runs exactly as written, its
    names bound by the warehouse's search path, and its dependencies come from ``depends_on`` only."""

    @property
    def name(self) -> str:
        return self.design.name

    @property
    def schema(self) -> str:
        return self.design.schema_name

    @property
    def table(self) -> str:
        return self.design.table_name

    def location(self, *loc: str | int) -> Location:
        """file:line of a key in this relation's design."""
        return self.doc.location(tuple(loc))


def select_names(tree: exp.Expr) -> list[str] | None:
    """The output column names of a query whose select list is explicit, else None.

    Explicit means no ``*`` and every expression a column or aliased; for a set operation the
    names are those of its first query. Names are as written (quotes removed).
    """
    from sqlglot import exp

    node: exp.Expr | None = tree
    while isinstance(node, exp.SetOperation | exp.Subquery):
        node = node.this
    if not isinstance(node, exp.Select):
        return None
    names: list[str] = []
    for item in node.expressions:
        if isinstance(item, exp.Alias):
            names.append(item.alias)
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Identifier):
            names.append(item.this.this)
        else:
            return None  # *, t.*, or an expression whose name the warehouse chooses
    return names
