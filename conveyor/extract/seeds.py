"""Seeds whose CSV file changed since their newest extract: ``conveyor load`` extracts them first.

A seed's extract records ``<file> sha256:<hex>`` as its query (the hash is taken before the
file is read, so a file that changes during the read is extracted again next time, never
missed). A load compares it with the file's hash now; a seed with no extract, or whose file
differs, is extracted in the load's run before the build reads the lake. So one path holds
for all source data (the lake), and editing a CSV then running ``conveyor load`` loads it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from conveyor.lake.lake import Lake
from conveyor.project import Project, Relation
from conveyor.sources import PROJECT_FILE_TYPES


def stale_seeds(project: Project, relations: Sequence[Relation]) -> list[Relation]:
    """The seed relations among ``relations`` whose file is not what their newest extract read."""
    from conveyor.sources.seed import seed_path

    lake = Lake(project.lake_location)
    stale = []
    for relation in relations:
        if relation.kind != "source" or relation.source is None:
            continue
        config = project.settings.sources[relation.source]
        if config.type not in PROJECT_FILE_TYPES:
            continue
        schema, table = project.upstream_table(relation)
        path = seed_path(project.path(config.dsn), schema, table)
        try:
            now = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            now = "missing"  # the extract says what is wrong
        latest = lake.latest(relation.source, relation.name, legacy=project.lake_table(relation))
        if latest is None or not latest.query.endswith(" " + now):
            stale.append(relation)
    return stale
