"""Secrets: ``${VAR}`` references, the credentials file, and masking for output.

Connection strings in project files name their secrets as ``${VAR}`` (or
``${VAR:-default}``). Values come from the process environment first, then from the
optional credentials file (``.env`` by default, which the project's ``.gitignore`` keeps
out of git). Resolved values are registered so that :func:`scrub` can remove them from
any text that might reach a log, an error, the tracking store or a web page.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from conveyor.errors import Location, SecretError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_QUERY_PASSWORD = re.compile(r"(\b(?:ssl)?password=)([^&#]*)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", re.IGNORECASE)
_SECRETS: set[str] = set()
_LOCK = threading.Lock()


def read_credentials_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (``export`` prefixes, quotes and comments allowed)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def resolve(
    text: str,
    *,
    where: Location,
    credentials: Mapping[str, str],
    credentials_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Replace every ``${VAR}`` in ``text``; an unset variable without default is an error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name, credentials.get(name))
        if (value is None or value == "") and default is not None:
            return default  # like the shell's ${VAR:-default}: empty counts as unset
        if value is None:
            looked = "the process environment" + (f" and {credentials_path}" if credentials_path else "")
            raise SecretError(
                f'environment variable "{name}" is not set (looked in {looked}).',
                location=where,
                hint=f"Export {name}=... or add it to the credentials file.",
                code="unset-env",
            )
        if _looks_secret(value, text):
            register_secret(value)
        return value

    resolved = _REFERENCE.sub(substitute, text)
    register_secret_from_dsn(resolved)
    return resolved


def _looks_secret(value: str, text: str) -> bool:
    """Whether a resolved value should be scrubbed from output.

    Tokens and passwords are long; a short value ("set", "one") would scrub common words out
    of every message, and a file path (a SQLite DSN) is not a secret. Inside a URL, any long
    value is treated as one (a webhook token is part of the URL's path).
    """
    return len(value) >= 8 and ("://" in text or ("/" not in value and "\\" not in value))


def check_no_inline_password(dsn: str, where: Location) -> None:
    """A literal password in a project file would end up in git: refuse it.

    Passwords in the URL's user info, in ``?password=`` and in libpq ``password=`` strings
    must each be a ``${VAR}`` reference.
    """
    if any(not _REFERENCE.search(password) for password in dsn_passwords(dsn)):
        raise SecretError(
            "a password is written inline in this connection string.",
            location=where,
            hint="Write it as ${SOME_PASSWORD} and set that variable in the environment or the credentials file.",
            code="inline-password",
        )


def register_secret(value: str) -> None:
    """Remember a secret so :func:`scrub` removes it from output."""
    if value and len(value) >= 3:
        with _LOCK:
            _SECRETS.add(value)


def register_secret_from_dsn(value: str) -> None:
    """Register every password written in a connection string (raw and percent-decoded forms).

    Only passwords: a file path or a host name is not a secret, and scrubbing short common
    words out of every message would make errors unreadable.
    """
    for password in dsn_passwords(value):
        register_secret(password)


def mask_dsn(dsn: str) -> str:
    """Return ``dsn`` with every password replaced by ``***``.

    Handles URL user info (``postgresql://user:secret@host/db``), ``password=`` query
    parameters and libpq ``key=value`` strings; file paths come back unchanged.

    Args:
        dsn: A connection string or path.

    Returns:
        The same string, safe to print or log.
    """
    if not URL_SCHEME.match(dsn):
        return _KV_PASSWORD.sub(r"\1***", dsn) if "=" in dsn else dsn
    head, sep, query = dsn.partition("?")
    scheme, _, rest = head.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo and not scheme.lower().startswith("sqlite"):
        head = f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"
    return head + sep + _QUERY_PASSWORD.sub(r"\1***", query)


def dsn_passwords(dsn: str) -> list[str]:
    """Every password written in ``dsn``, raw and percent-decoded, longest first."""
    found: list[str] = []
    if URL_SCHEME.match(dsn):
        head, _, query = dsn.partition("?")
        userinfo, at, _ = head.partition("://")[2].rpartition("@")
        if at and ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
        found += [m.group(2) for m in _QUERY_PASSWORD.finditer(query)]
    else:
        found += [m.group(2).strip("'") for m in _KV_PASSWORD.finditer(dsn)]
    found += [unquote(value) for value in found]
    return sorted({value for value in found if value}, key=len, reverse=True)


def scrub_dsn(text: str, dsn: str) -> str:
    """Remove any password of ``dsn`` from ``text`` (driver messages may echo parts of it)."""
    text = text.replace(dsn, mask_dsn(dsn))
    for password in dsn_passwords(dsn):
        text = text.replace(password, "***")
    return text


def scrub(text: str) -> str:
    """Remove every registered secret, and any URL password, from ``text``."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return re.sub(r"(\w+://[^:/\s@]*:)([^@\s/]+)(@)", r"\1***\3", text)
