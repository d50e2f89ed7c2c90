"""Checks of the places a project reads and writes on this machine, made without opening a database.

The lake folder, a DuckDB environment's file, a SQLite source's file (or a lake source's
folder), the SQLite tracking store and the credentials file: each is checked for what would
otherwise fail half-way through a run (a file where a folder belongs, a folder that cannot be
written, a file that is not a database). ``probe`` also tries to create a file where a command
will write (and removes it), which is the only reliable test of a read-only place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from conveyor.errors import ConveyorError, LakeError, Location
from conveyor.project import Project
from conveyor.validate.problems import Problem, problem
from conveyor.warehouse.dialect import dialect as dialect_of

SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of a DuckDB database file


def _blocking_file(path: Path) -> Path | None:
    """The first ancestor of ``path`` that exists and is not a folder (then nothing can be created below it)."""
    for ancestor in reversed(path.parents):
        if ancestor.exists() and not ancestor.is_dir():
            return ancestor
    return None


def _nearest_folder(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried: permissions alone lie to root and on read-only mounts)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".conveyor-probe-"):
            return True
    except OSError:
        return False


def _head(path: Path, size: int) -> bytes | None:
    """The first ``size`` bytes of a database file; None when they cannot be read safely.

    SQLite and DuckDB lock their files with POSIX (``fcntl``) locks, and closing *any*
    descriptor of a file drops every such lock the process holds on it. So a file this
    process has open (a pipeline run's tracking store, say) is never opened here: dropping
    SQLite's locks lets another process checkpoint under it and corrupts the database.
    """
    if _open_here(path):
        return None
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError:
        return None


def _differs(head: bytes | None, offset: int, magic: bytes) -> bool:
    """Whether a file's header shows it is not the database it should be (unread: it does not)."""
    return head is not None and head[offset : offset + len(magic)] != magic


def _open_here(path: Path) -> bool:
    """Whether this process holds a descriptor of ``path`` (True when it cannot tell: no /proc)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return True
    target = str(path.resolve())
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == target:
                return True
        except OSError:
            continue
    return False


def _plain(dsn: str) -> bool:
    """A DSN with no ${VAR} left in it (one that still names variables is checked when they resolve)."""
    return "${" not in dsn


def check_lake(project: Project, *, probe: bool) -> Iterator[Problem]:
    """The lake is a folder (or can be one), and, with ``probe``, one this process can write."""
    where = project.settings_doc.location(("lake", "path"))
    try:
        value = project.lake_location  # ${VAR} replaced
    except ConveyorError as exc:  # an unset variable
        yield problem("unset-env", exc.message, location=where, hint=exc.hint)
        return
    if "://" in value:
        yield from _check_store(value, where, probe=probe)
        return
    path = Path(value)
    hint = "Set lake.path in conveyor.yaml to a folder this user can write, or fix the folder."
    blocking = _blocking_file(path)
    if path.exists() and not path.is_dir():
        yield problem("lake-path", f"the lake {path} is a file, not a folder.", location=where, hint=hint)
    elif blocking is not None:
        yield problem(
            "lake-path", f"the lake {path} cannot be created: {blocking} is a file.", location=where, hint=hint
        )
    elif probe and not _writable(_nearest_folder(path)):
        folder = _nearest_folder(path)
        yield problem(
            "lake-path", f"the lake {path} cannot be written: {folder} is read-only.", location=where, hint=hint
        )


def _check_store(value: str, where: Location | None, *, probe: bool) -> Iterator[Problem]:
    """An object-store lake's location has the form ``s3://bucket/prefix`` (always), and, with ``probe``,
    its bucket answers and takes a small object put and deleted under the prefix (credentials, endpoint,
    permissions: whatever would fail the first extract half-way fails here)."""
    from conveyor.lake.store import S3Store, open_store

    try:
        store = open_store(value)
    except LakeError as exc:
        yield problem("lake-path", exc.message, location=where, hint=exc.hint)
        return
    if not probe or not isinstance(store, S3Store):
        return
    try:
        store.probe()
    except LakeError as exc:
        message = f"the lake {store.location} cannot be written: {exc.message}"
        yield problem("lake-path", message, location=where, hint=exc.hint)


def duckdb_file(dsn: str, project: Project) -> Path:
    return project.path(dsn.removeprefix("duckdb:///").removeprefix("duckdb://"))


def check_environment(project: Project, name: str, *, probe: bool) -> Iterator[Problem]:
    """A DuckDB environment's file is a DuckDB database, or can be created (written, with ``probe``)."""
    config = project.settings.environments[name]
    if not dialect_of(config.type).LOCAL_FILE or not _plain(config.dsn):
        return
    path = duckdb_file(config.dsn, project)
    where = project.settings_doc.location(("environments", name, "dsn"))
    hint = f'Fix the dsn of environment "{name}" in conveyor.yaml.'
    blocking = _blocking_file(path)
    say = f'the DuckDB file of environment "{name}", {path},'
    if path.is_dir():
        yield problem("warehouse-path", f"{say} is a folder.", location=where, hint=hint + " It names a file.")
    elif blocking is not None:
        yield problem("warehouse-path", f"{say} cannot be created: {blocking} is a file.", location=where, hint=hint)
    elif path.is_file() and path.stat().st_size > 0 and _differs(_head(path, 12), 8, DUCKDB_MAGIC):
        yield problem("warehouse-path", f"{say} is not a DuckDB database.", location=where, hint=hint)
    elif probe and not _writable(_nearest_folder(path.parent)):
        folder = _nearest_folder(path.parent)
        yield problem("warehouse-path", f"{say} cannot be written: {folder} is read-only.", location=where, hint=hint)


#: source types whose DSN is a path on this machine: a database file or a folder of extracts
_LOCAL_SOURCES = {"sqlite": "file", "lake": "folder", "seed": "folder"}


def check_source(project: Project, name: str) -> Iterator[Problem]:
    """A SQLite source's file is a SQLite database; a lake source's folder is a folder."""
    config = project.settings.sources[name]
    local = _LOCAL_SOURCES.get(config.type)
    if local is None or not _plain(config.dsn) or config.dsn.startswith("s3://"):
        return  # a lake source on an object store is checked when it is read
    where = project.settings_doc.location(("sources", name, "dsn"))
    hint = f'Fix the dsn of source "{name}" in conveyor.yaml.'
    if local == "folder":
        folder = project.path(config.dsn.removeprefix("lake://"))
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            yield problem(
                "source-path",
                f'the folder of {config.type} source "{name}", {folder}, {what}.',
                location=where,
                hint=hint,
            )
        return
    path = project.path(config.dsn.removeprefix("sqlite:///").removeprefix("sqlite://"))
    say = f'the SQLite database of source "{name}", {path},'
    if path.is_dir():
        yield problem("source-path", f"{say} is a folder.", location=where, hint=hint)
    elif not path.is_file():
        yield problem("source-path", f"{say} does not exist.", location=where, hint=hint)
    elif path.stat().st_size > 0 and _differs(_head(path, 16), 0, SQLITE_MAGIC):
        yield problem("source-path", f"{say} is not a SQLite database.", location=where, hint=hint)


def check_tracking(project: Project, *, probe: bool) -> Iterator[Problem]:
    """A SQLite tracking store is a SQLite database, or can be created."""
    dsn = project.settings.tracking.dsn
    if not dsn.startswith("sqlite://") or not _plain(dsn):
        return
    if dsn.startswith("sqlite:////"):
        path = Path(dsn.removeprefix("sqlite:///"))
    else:
        path = project.path(dsn.removeprefix("sqlite:///").removeprefix("sqlite://"))
    where = project.settings_doc.location(("tracking", "dsn"))
    hint = "Fix tracking.dsn in conveyor.yaml."
    blocking = _blocking_file(path)
    say = f"the tracking store {path}"
    if path.is_dir():
        yield problem("tracking-path", f"{say} is a folder.", location=where, hint=hint)
    elif blocking is not None:
        yield problem("tracking-path", f"{say} cannot be created: {blocking} is a file.", location=where, hint=hint)
    elif path.is_file() and path.stat().st_size > 0 and _differs(_head(path, 16), 0, SQLITE_MAGIC):
        yield problem("tracking-path", f"{say} is not a SQLite database.", location=where, hint=hint)
    elif probe and not _writable(_nearest_folder(path.parent)):
        folder = _nearest_folder(path.parent)
        yield problem("tracking-path", f"{say} cannot be written: {folder} is read-only.", location=where, hint=hint)


def check_credentials(project: Project) -> Iterator[Problem]:
    """The credentials file, if there is one, is UTF-8 text of KEY=VALUE lines."""
    try:
        project.credentials  # noqa: B018 - reading it is the check
    except ConveyorError as exc:
        yield problem("credentials-file", exc.message, location=exc.location, hint=exc.hint)


def check_places(
    project: Project,
    *,
    lake: bool = True,
    lake_write: bool = False,
    environments: tuple[str, ...] = (),
    sources: tuple[str, ...] = (),
    tracking: bool = True,
    probe: bool = False,
) -> list[Problem]:
    """Every place check that applies, each problem once."""
    found = [*check_credentials(project)]
    if lake:
        found.extend(check_lake(project, probe=probe and lake_write))
    for name in environments:
        found.extend(check_environment(project, name, probe=probe))
    for name in sources:
        found.extend(check_source(project, name))
    if tracking:
        found.extend(check_tracking(project, probe=probe))
    return found
