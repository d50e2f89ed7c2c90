"""``conveyor init``: a new project folder that validates and runs from its first minute.

It writes ``conveyor.yaml`` (one source, a DuckDB warehouse, a tracking store), a
``.gitignore`` that keeps data and credentials out of git, the credentials themselves in
``.env`` (never in ``conveyor.yaml``: it names them as ``${VAR}``) and a ``.env.example``
to commit instead, one sample transformation, and a nightly pipeline. It writes nothing
when the folder already holds a project, and refuses a DSN it cannot read before writing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.errors import UserError

#: DSN schemes and the source type each means
_SCHEMES = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "postgresql+psycopg": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "sqlite": "sqlite",
}
_NAME = re.compile(r"[^a-z0-9_]+")


@dataclass
class Scaffold:
    """What ``init`` wrote (paths relative to the project folder) and what to do next."""

    root: Path
    written: list[str] = field(default_factory=list)
    source: str = ""
    source_type: str = ""
    next_steps: list[str] = field(default_factory=list)


def source_type_of(dsn: str) -> str:
    """The source type a DSN names (``postgres``, ``mysql`` or ``sqlite``; a file path is SQLite)."""
    scheme = urlsplit(dsn).scheme.lower() if "://" in dsn else ""
    if not scheme:
        if dsn.endswith((".db", ".sqlite", ".sqlite3")) or "/" in dsn:
            return "sqlite"
        raise UserError(
            f'cannot tell which database "{dsn}" is.',
            hint="Give a URL such as postgresql://user@host/db, mysql://user@host/db, or a SQLite file path.",
        )
    if scheme not in _SCHEMES:
        raise UserError(
            f'"{scheme}://" is not a database Conveyor reads.',
            hint="Conveyor reads postgresql://, mysql:// (MariaDB too) and SQLite files.",
        )
    return _SCHEMES[scheme]


def name_of(text: str, fallback: str) -> str:
    """A valid lower-case name (letters, digits, underscores, not starting with a digit)."""
    name = _NAME.sub("_", text.lower()).strip("_")
    if not name:
        return fallback
    return f"_{name}" if name[0].isdigit() else name


def scaffold(root: Path, *, dsn: str, name: str | None = None, source: str | None = None) -> Scaffold:
    """Write a new project into ``root`` (created if missing) for the upstream database ``dsn``.

    Raises:
        UserError: ``root`` already holds a project, or ``dsn`` names no database Conveyor reads.
    """
    kind = source_type_of(dsn)
    if (root / "conveyor.yaml").exists():
        raise UserError(
            f"{root / 'conveyor.yaml'} already exists: this folder is a project.",
            hint="Run init in a new or empty folder, or edit the existing conveyor.yaml.",
        )
    project = name_of(name or root.resolve().name, "project")
    database = urlsplit(dsn).path.strip("/") if "://" in dsn else Path(dsn).stem
    source_name = name_of(source or database or "upstream", "upstream")
    variable = f"{source_name.upper()}_DSN"
    out = Scaffold(root=root, source=source_name, source_type=kind)

    def write(relative: str, text: str) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out.written.append(relative)

    root.mkdir(parents=True, exist_ok=True)
    write("conveyor.yaml", _SETTINGS.format(project=project, source=source_name, kind=kind, variable=variable))
    if not (root / ".gitignore").exists():
        write(".gitignore", _GITIGNORE)
    write(".env", f"# credentials for ${{VAR}} references in conveyor.yaml; never commit this file\n{variable}={dsn}\n")
    (root / ".env").chmod(0o600)
    write(".env.example", f"# copy to .env and fill in; .env is git-ignored\n{variable}={_placeholder(kind)}\n")
    write("schemas/analytics/example.yaml", _EXAMPLE_DESIGN)
    write("schemas/analytics/example.sql", _EXAMPLE_SQL)
    write("pipelines/nightly.yaml", _PIPELINE)
    out.next_steps = [
        f"conveyor -p {root} bootstrap          # a design for every table of {source_name}",
        f"conveyor -p {root} validate           # everything checked, with file:line",
        f"conveyor -p {root} run                # extract, load, build, publish",
        f'conveyor -p {root} query "FROM analytics.example"',
        f"conveyor -p {root} pipeline install nightly   # then `conveyor scheduler` runs it at 02:30 UTC",
    ]
    return out


def _placeholder(kind: str) -> str:
    return {
        "postgres": "postgresql://user:password@host:5432/database",
        "mysql": "mysql://user:password@host:3306/database",
    }.get(kind, "path/to/database.db")


_SETTINGS = """\
# Conveyor project. Every key is checked: a typo is an error that names its line.
# `conveyor schema settings` prints the JSON Schema of this file for editor completion;
# docs/configuration.md describes every key.
name: {project}

# Upstream databases. Each source's tables load into the warehouse schema of the same name,
# and their designs live in schemas/{source}/ (`conveyor bootstrap` writes them).
sources:
  {source}:
    type: {kind}
    dsn: ${{{variable}}}   # set in .env (git-ignored), or in the environment

# Extracts land here as Parquet, one immutable folder per extract.
lake:
  path: lake
  keep: 3

# Warehouses: `conveyor run` builds the default one; add others (say, a PostgreSQL
# production) and pick one with --env.
environments:
  development:
    type: duckdb
    dsn: warehouse/{project}_development.duckdb
default_environment: development

# Runs, events and extract watermarks.
tracking:
  dsn: sqlite:///.conveyor/tracking.db

defaults:
  jobs: 4
  # schemas searched, after a relation's own, for table names written without a schema
  search_path: [{source}]
"""

_GITIGNORE = """\
# extracted Parquet files
lake/
# DuckDB warehouse files
warehouse/
# run history and local state
.conveyor/
# credentials for ${VAR} references; never commit (commit .env.example instead)
.env
"""

_EXAMPLE_DESIGN = """\
# A transformation: this design plus the query in example.sql. `kind: ctas` builds a table
# from the query (`view` makes a view). Each column the query returns is listed with its
# type; `conveyor validate` checks that the query really returns them.
name: analytics.example
kind: ctas
description: A first transformation; replace its query with one over your tables.
columns:
  - name: id
    type: integer
    not_null: true
    description: One row per id.
  - name: greeting
    type: text
constraints:
  primary_key: [id]   # checked on every build, before anything is published
"""

_EXAMPLE_SQL = """\
-- After `conveyor bootstrap`, read your tables by name, e.g.:
--   SELECT customer_id AS id, count(*) AS orders FROM orders GROUP BY customer_id
-- Conveyor finds the tables a query reads and builds them first.
SELECT 1 AS id, 'hello from Conveyor' AS greeting
"""

_PIPELINE = """\
# A pipeline: `conveyor pipeline run nightly` runs it now; `conveyor pipeline install nightly`
# and `conveyor scheduler` run it every night. See docs/pipelines.md.
description: Extract everything, then rebuild the development warehouse.
schedule: nightly at 02:30 UTC
steps: full
environments:
  primary: development
"""
