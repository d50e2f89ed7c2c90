"""Bootstrap: write table designs from what the upstream sources reflect.

``run`` plans and writes (:func:`bootstrap`), ``design`` makes a new design, ``merge`` merges
upstream changes into an existing one, ``yamlfile`` writes YAML, ``plan`` and ``report`` hold
what is planned and what was done. See docs/bootstrap.md.
"""

from conveyor.bootstrap.design import new_design, suggest_split_by
from conveyor.bootstrap.merge import merge
from conveyor.bootstrap.report import ACTIONS, BootstrapReport, TableReport
from conveyor.bootstrap.run import bootstrap
from conveyor.bootstrap.yamlfile import dump, guess_indent

__all__ = [
    "ACTIONS",
    "BootstrapReport",
    "TableReport",
    "bootstrap",
    "dump",
    "guess_indent",
    "merge",
    "new_design",
    "suggest_split_by",
]
