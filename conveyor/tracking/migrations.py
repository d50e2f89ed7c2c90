"""Numbered migrations of the tracking store: ``NNNN_name.sql`` files (or ``NNNN_name.sqlite.sql`` /
``NNNN_name.postgres.sql`` where the backends differ), applied in order, each in its own transaction,
and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from conveyor import __version__
from conveyor.errors import UserError
from conveyor.tracking.backends import Backend
from conveyor.tracking.models import (
    format_ts,
)
from conveyor.tracking.rows import now_utc

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered migration, already resolved for one backend."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Split the file into statements (sqlite's tokenizer knows quotes and comments)."""
        statements: list[str] = []
        buffer = ""
        for line in self.sql.splitlines(keepends=True):
            buffer += line
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        leftover = [ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if leftover:
            raise ValueError(f"migration {self.version:04d}_{self.name}: statement without a final ';'")
        return statements


def load_migrations(dialect: str) -> list[Migration]:
    """Read the packaged migrations for ``dialect`` (``sqlite`` or ``postgres``), in order.

    A ``NNNN_name.<dialect>.sql`` variant wins over the portable ``NNNN_name.sql``.

    Raises:
        ValueError: a version has no file for this dialect, or its variants disagree on the name.
    """
    root = resources.files("conveyor.tracking").joinpath("migrations")
    found: dict[int, dict[str | None, tuple[str, Any]]] = {}
    for entry in root.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(3)] = (match.group(2), entry)
    migrations = []
    for version in sorted(found):
        variants = found[version]
        if len({name for name, _ in variants.values()}) > 1:
            raise ValueError(f"migration {version:04d} has variants with different names")
        chosen = variants.get(dialect) or variants.get(None)
        if chosen is None:
            raise ValueError(f"migration {version:04d} has no file for {dialect}")
        migrations.append(Migration(version, chosen[0], chosen[1].read_text(encoding="utf-8")))
    return migrations


# -- backends ------------------------------------------------------------------------------


def applied_versions(backend: Backend) -> dict[int, str]:
    if not backend.table_exists("schema_migrations"):
        return {}
    return {int(r["version"]): r["name"] for r in backend.query("SELECT version, name FROM schema_migrations")}


def _check_known(applied: Mapping[int, str], migrations: Sequence[Migration], where: str) -> None:
    known = {m.version for m in migrations}
    unknown = sorted(set(applied) - known)
    if unknown:
        newest = unknown[-1]
        raise UserError(
            f"the tracking store {where} has schema version {newest} ({applied[newest]}), newer than "
            f"conveyor {__version__} knows (up to {max(known, default=0)}).",
            hint="Upgrade conveyor (pip install -U conveyor) to use this store.",
        )


def migrate(backend: Backend, migrations: Sequence[Migration], where: str) -> list[int]:
    """Apply the pending migrations in order, one transaction each.

    Args:
        backend: A connected backend.
        migrations: All known migrations, in version order.
        where: The masked DSN, for error messages.

    Returns:
        The versions applied now (empty when the store was up to date).

    Raises:
        UserError: the store has a version this code does not know.
    """
    applied = applied_versions(backend)
    _check_known(applied, migrations, where)
    done: list[int] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        with backend.transaction():
            backend.bootstrap()
            # another process may have migrated while we waited for the lock
            applied = applied_versions(backend)
            _check_known(applied, migrations, where)
            if migration.version in applied:
                continue
            for statement in migration.statements():
                backend.execute(statement)
            backend.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, format_ts(now_utc())),
            )
        done.append(migration.version)
    return done
