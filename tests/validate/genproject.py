"""Generate a large, valid project for timing ``conveyor validate`` (and ``Project.load``).

``python -m tests.validate.genproject DIR --relations 1000`` writes a project whose first 50
relations are source tables of a SQLite source (``upstream.db``, written too) and whose
other relations are CTAS (every tenth a view) that each read two earlier relations, in two
transformation schemas. ``tests/validate/timing.py`` times validation on it.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
from pathlib import Path

SETTINGS = """\
name: generated
sources:
  src:
    type: sqlite
    dsn: upstream.db
environments:
  dev:
    type: duckdb
    dsn: warehouse/dev.duckdb
"""


def generate(root: Path, relations: int = 1000, sources: int = 50, seed: int = 7) -> Path:
    """Write the project into ``root`` (replacing it); return ``root``."""
    rng = random.Random(seed)
    if root.exists():
        shutil.rmtree(root)
    (root / "schemas" / "src").mkdir(parents=True)
    (root / "conveyor.yaml").write_text(SETTINGS, encoding="utf-8")
    con = sqlite3.connect(root / "upstream.db")
    for index in range(sources):
        con.execute(
            f"CREATE TABLE t{index:04d} (id INTEGER PRIMARY KEY, amount NUMERIC(18,2), label TEXT, "
            "updated_at TIMESTAMPTZ)"
        )
    con.commit()
    con.close()
    names: list[str] = []
    for index in range(sources):
        name = f"src.t{index:04d}"
        (root / "schemas" / "src" / f"t{index:04d}.yaml").write_text(
            f"name: {name}\n"
            "description: A generated source table\n"
            "columns:\n"
            "  - name: id\n    type: bigint\n    not_null: true\n"
            "  - name: amount\n    type: decimal(18,2)\n"
            "  - name: label\n    type: text\n"
            "  - name: updated_at\n    type: timestamptz\n"
            "constraints:\n  primary_key: [id]\n"
            "extract:\n  split_by: id\n",
            encoding="utf-8",
        )
        names.append(name)
    for index in range(relations - sources):
        schema = "mart" if index % 2 else "core"
        table = f"r{index:04d}"
        view = index % 10 == 9
        a, b = rng.sample(names, 2)
        folder = root / "schemas" / schema
        folder.mkdir(exist_ok=True)
        kind = "view" if view else "ctas"
        columns = (
            "columns:\n  - name: id\n  - name: amount\n  - name: label\n"
            if view
            else "columns:\n  - name: id\n    type: bigint\n  - name: amount\n    type: decimal(38,2)\n"
            "  - name: label\n    type: text\n"
        )
        (folder / f"{table}.yaml").write_text(
            f"name: {schema}.{table}\nkind: {kind}\ndescription: Generated relation {index}\n{columns}"
            "tags: [generated]\n",
            encoding="utf-8",
        )
        (folder / f"{table}.sql").write_text(
            "-- generated\n"
            "WITH joined AS (\n"
            "    SELECT x.id, x.amount + coalesce(y.amount, 0) AS amount, x.label\n"
            f"    FROM {a} AS x\n"
            f"    LEFT JOIN {b} AS y ON y.id = x.id\n"
            "    WHERE x.amount IS NOT NULL\n"
            ")\n"
            "SELECT id, amount, label FROM joined\n",
            encoding="utf-8",
        )
        names.append(f"{schema}.{table}")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--relations", type=int, default=1000)
    args = parser.parse_args()
    generate(args.root, args.relations)
    print(f"wrote {args.relations} relations to {args.root}")


if __name__ == "__main__":
    main()
