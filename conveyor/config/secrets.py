"""Secrets: ``${VAR}`` references, the credentials file, and masking for output.

Connection strings in project files name their secrets as ``${VAR}`` (or
``${VAR:-default}``). Values come from the process environment first, then from the
optional credentials file (``.env`` by default, which the project's ``.gitignore`` keeps
out of git). Resolved values are registered so that :func:`scrub` can remove them from
any text that might reach a log, an error, the tracking store or a web page.

Dead-man and notification URLs are secrets as a whole (a healthchecks.io ping URL, a Slack
webhook), so they are registered whole and by their secret-bearing parts (see
:func:`register_url`). Log records pass through :class:`ScrubFilter`, which the CLI puts on
its one log handler and which sits on the loggers of the HTTP clients that deliver them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from conveyor.errors import Location, SecretError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_QUERY_PASSWORD = re.compile(r"(\b(?:ssl)?password=)([^&#]*)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", re.IGNORECASE)
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
# schemes whose host is a host name (apprise's json://host/path, mailto://...); in the others
# (slack://TokenA/TokenB/TokenC, discord://id/token ...) host and path segments are tokens
_HOST_SCHEMES = frozenset(["http", "https", "json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"])
# connection strings: their secret is the password, never the database name in the path
_DSN_SCHEMES = ("postgres", "mysql", "sqlite", "duckdb", "redshift")


def read_credentials_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (``export`` prefixes, quotes and comments allowed).

    A missing file is no file, and a line without ``=`` is ignored. A folder and bytes that
    are not UTF-8 are errors (at the line of the first bad byte); no value is ever shown.
    """
    values: dict[str, str] = {}
    if not path.exists():
        return values
    hint = "The credentials file holds KEY=VALUE lines, # comments and blank lines (see credentials_file)."
    if not path.is_file():
        raise SecretError(
            f"the credentials file {path} is not a file.", location=Location(path), hint=hint, code="credentials-file"
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = data[: exc.start].count(b"\n") + 1
        raise SecretError(
            f"the credentials file {path} is not UTF-8 text (byte {exc.start + 1}).",
            location=Location(path, number), hint=hint, code="credentials-file",
        ) from None  # fmt: skip
    for raw in text.splitlines():
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
    url: bool = False,
    register: bool = True,
) -> str:
    """Replace every ``${VAR}`` in ``text``; an unset variable without default is an error.

    Every resolved secret is registered for :func:`scrub`. ``url``: ``text`` is a dead-man or
    notification URL, a secret as a whole (see :func:`register_url`). ``register=False``:
    ``text`` is no secret (a lake's location), so nothing is scrubbed from messages.
    """
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
        if register:
            _register_value(value, text)
        return value

    resolved = _REFERENCE.sub(substitute, text)
    if not register:
        return resolved
    register_secret_from_dsn(resolved)
    if url:
        register_url(resolved)
    return resolved


def _register_value(value: str, text: str) -> None:
    """Register what is secret in one value a ``${VAR}`` resolved to.

    A whole URL (``${HEALTHCHECK_URL}``, ``${DATABASE_URL}``) is the secret, with the parts
    that carry it: a connection string's password, a webhook's tokens.
    """
    if not URL_SCHEME.match(value):
        if _looks_secret(value, text):
            register_secret(value)
        return
    if value.lower().startswith(_DSN_SCHEMES):
        if dsn_passwords(value):
            register_secret(value)
            register_secret_from_dsn(value)
        return
    register_url(value)


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


def register_url(url: str) -> None:
    """Register a dead-man or notification URL: the whole URL and every part that carries a secret.

    The parts matter because libraries print them apart from the URL (apprise names a host,
    an HTTP client a normalised URL): the user info's password, every query value of 8 or
    more characters, and tokens in the host and path (see :func:`url_secrets`).
    """
    register_secret(url)
    register_secret(url.rstrip("/"))
    for part in url_secrets(url):
        register_secret(part)
        register_secret(unquote(part))
        register_secret(quote(unquote(part), safe=""))


def url_secrets(url: str) -> list[str]:
    """The secret-bearing parts of a URL (raw, as written).

    For schemes whose host is a host name (http, json, mailto ...) a path segment is a token
    when it looks like one (16 or more characters, or 8 or more mixing letters and digits: a
    UUID, a ping key); ``/ping/nightly`` keeps its words. In apprise's other schemes
    (``slack://TokenA/TokenB/TokenC``) the host, the user and every segment of 8 or more
    characters are tokens.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    tokens_everywhere = parts.scheme.lower() not in _HOST_SCHEMES
    userinfo, at, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    found = [password] if at and password else []
    if tokens_everywhere:
        found += [p for p in (user, host) if len(p) >= 8 and "." not in p and p != "localhost"]
    segments = [s for s in parts.path.split("/") if s]
    found += [s for s in segments if (tokens_everywhere and len(s) >= 8) or _token_like(s)]
    pairs = [pair.partition("=") for pair in parts.query.split("&")]
    found += [value for _, eq, value in pairs if eq and len(value) >= 8]
    return found


def _token_like(text: str) -> bool:
    """A key or token rather than a word: long, or letters mixed with digits."""
    has_digit = any(c.isdigit() for c in text)
    return len(text) >= 16 or (len(text) >= 8 and has_digit and any(c.isalpha() for c in text))


def redact_url(url: str) -> str:
    """A URL as a log line may show it: the scheme, and the host where it is a host name.

    ``https://hc-ping.com/<key>`` becomes ``https://hc-ping.com/…``; ``slack://T/B/C`` becomes
    ``slack://…``. What is left goes through :func:`scrub` too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL)"
    if not parts.scheme:
        return "(a URL)"
    host = parts.hostname if parts.scheme.lower() in _HOST_SCHEMES else None
    return scrub(f"{parts.scheme}://{host or ''}/…" if host else f"{parts.scheme}://…")


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


class ScrubFilter(logging.Filter):
    """Run :func:`scrub` over every log record: its message with the arguments, traceback and stack.

    On a handler it covers every record the handler writes, whichever library logged it; on
    a logger (``httpx``, ``apprise``) it covers that logger's records for any handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: still say what was logged, scrubbed
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


LOG_FILTER = ScrubFilter()
#: loggers that may print a URL or a DSN: Conveyor's own and those of the HTTP clients it uses
SCRUBBED_LOGGERS = (
    "conveyor",
    "conveyor.pipeline",
    "conveyor.scheduler",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.proxy",
    "apprise",
    "urllib3.connectionpool",
)


def scrub_loggers() -> None:
    """Put :data:`LOG_FILTER` on :data:`SCRUBBED_LOGGERS` (a logger's filter sees only its own records)."""
    for name in SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if LOG_FILTER not in logger.filters:
            logger.addFilter(LOG_FILTER)
