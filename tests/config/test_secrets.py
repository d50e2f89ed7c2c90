"""Secrets: ${VAR} references, the credentials file, inline passwords, masking and scrubbing."""

from __future__ import annotations

import io
import logging
import secrets
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.config.secrets import (
    LOG_FILTER,
    check_no_inline_password,
    mask_dsn,
    read_credentials_file,
    redact_url,
    register_secret,
    resolve,
    scrub,
    url_secrets,
)
from conveyor.errors import Location, ProjectError, SecretError
from conveyor.project import Project

WHERE = Location("conveyor.yaml", 7)


def test_set_variable_is_substituted() -> None:
    text = resolve("postgresql://app:${PGPW}@db/x", where=WHERE, credentials={}, environ={"PGPW": "s3cr3t"})
    assert text == "postgresql://app:s3cr3t@db/x"


def test_unset_variable_names_itself_and_where_it_looked(tmp_path: Path) -> None:
    creds = tmp_path / ".env"
    with pytest.raises(SecretError) as info:
        resolve("${NO_SUCH_VAR_X}", where=WHERE, credentials={}, credentials_path=creds, environ={})
    error = info.value
    assert error.code == "unset-env"
    assert error.exit_code == 2
    assert '"NO_SUCH_VAR_X"' in error.message
    assert "process environment" in error.message and str(creds) in error.message
    assert error.render().startswith("conveyor.yaml:7: ")


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("a${X:-dflt}b", {}, "adfltb"),
        ("a${X:-dflt}b", {"X": "set"}, "asetb"),
        ("${X:-}", {}, ""),
        ("${X:-/var/lib/db.sqlite}", {}, "/var/lib/db.sqlite"),
        ("${A}-${B:-two}-${C}", {"A": "one", "C": "three"}, "one-two-three"),
        ("no references", {}, "no references"),
        ("$NOT_A_REFERENCE and $${}", {}, "$NOT_A_REFERENCE and $${}"),
    ],
)
def test_defaults_and_several_references(text: str, environ: dict[str, str], expected: str) -> None:
    assert resolve(text, where=WHERE, credentials={}, environ=environ) == expected


def test_default_replaces_an_empty_variable() -> None:
    assert resolve("${X:-dflt}", where=WHERE, credentials={}, environ={"X": ""}) == "dflt"


def test_credentials_file_is_read_and_process_env_wins() -> None:
    credentials = {"A": "from-file", "B": "from-file"}
    text = resolve("${A}/${B}", where=WHERE, credentials=credentials, environ={"A": "from-env"})
    assert text == "from-env/from-file"


def test_credentials_file_format(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# a comment\n\nPLAIN=value\nexport EXPORTED=yes\nQUOTED=\"with spaces\"\nSINGLE='x=y'\n"
        "  SPACED = padded  \nNOEQUALS\nEMPTY=\n",
        encoding="utf-8",
    )
    assert read_credentials_file(path) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "QUOTED": "with spaces",
        "SINGLE": "x=y",
        "SPACED": "padded",
        "EMPTY": "",
    }
    assert read_credentials_file(tmp_path / "missing.env") == {}


def _env_project(make_project: Callable[..., Path], dsn: str, dotenv: str | None) -> Project:
    root = make_project()
    text = (root / "conveyor.yaml").read_text().replace("dsn: upstream.db", f"dsn: {dsn}")
    (root / "conveyor.yaml").write_text(text)
    if dotenv is not None:
        (root / ".env").write_text(dotenv)
    return Project.load(root)


def test_project_reads_the_credentials_file(make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_TEST_UP", raising=False)
    project = _env_project(make_project, "${CONVEYOR_TEST_UP}", "CONVEYOR_TEST_UP=from-dotenv.db\n")
    assert project.source_dsn("shop") == "from-dotenv.db"
    monkeypatch.setenv("CONVEYOR_TEST_UP", "from-env.db")
    assert project.source_dsn("shop") == "from-env.db"


def test_project_unset_variable_points_at_the_dsn_line(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_TEST_UP", raising=False)
    project = _env_project(make_project, "${CONVEYOR_TEST_UP}", None)
    with pytest.raises(SecretError) as info:
        project.source_dsn("shop")
    assert info.value.code == "unset-env"
    assert str(info.value.location) == "conveyor.yaml:5"
    assert str(project.root / ".env") in info.value.message


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:hunter2@db.example.com/warehouse",
        "mysql://root:p%40ss@127.0.0.1:3306/shop",
        "postgresql://app:hunter2@${PGHOST}/x",
    ],
)
def test_inline_password_is_refused(dsn: str) -> None:
    with pytest.raises(SecretError) as info:
        check_no_inline_password(dsn, WHERE)
    assert info.value.code == "inline-password"
    assert info.value.location == WHERE
    assert "hunter2" not in info.value.render() and "p%40ss" not in info.value.render()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:${PGPASSWORD}@db/x",
        "postgresql://app@db/x",
        "${DATABASE_URL}",
        "warehouse.duckdb",
        "sqlite:///relative/path.db",
    ],
)
def test_referenced_or_absent_password_is_accepted(dsn: str) -> None:
    assert check_no_inline_password(dsn, WHERE) is None


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://app@db/x?sslmode=require&password=hunter2", "host=db user=app password=hunter2 dbname=x"],
)
def test_inline_password_elsewhere_in_the_dsn_is_refused(dsn: str) -> None:
    with pytest.raises(SecretError) as info:
        check_no_inline_password(dsn, WHERE)
    assert info.value.code == "inline-password"


def test_project_load_reports_an_inline_password(make_project: Callable[..., Path]) -> None:
    root = make_project()
    text = (root / "conveyor.yaml").read_text()
    text += "tracking:\n  dsn: postgresql://conveyor:hunter2@db/tracking\n"
    (root / "conveyor.yaml").write_text(text)
    with pytest.raises(ProjectError) as info:
        Project.load(root)
    assert [p.code for p in info.value.problems] == ["inline-password"]


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://user:s3cret@db:5432/x?sslmode=require", "postgresql://user:***@db:5432/x?sslmode=require"),
        ("postgresql://user:s3cret@[::1]:5432/x", "postgresql://user:***@[::1]:5432/x"),
        ("mysql://u:a%2Fb@h/db", "mysql://u:***@h/db"),
        ("postgresql://user@db/x", "postgresql://user@db/x"),
        ("warehouse.duckdb", "warehouse.duckdb"),
        ("sqlite:///relative/path.db", "sqlite:///relative/path.db"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_scrub_removes_registered_secrets_everywhere() -> None:
    secret = "tok-" + secrets.token_hex(8)
    register_secret(secret)
    text = f"connect failed: password {secret!r} rejected; retry with {secret}/x"
    cleaned = scrub(text)
    assert secret not in cleaned
    assert cleaned.count("***") == 2
    assert cleaned.startswith("connect failed: password ")


def test_resolved_secrets_are_registered_for_scrubbing() -> None:
    password = "pw-" + secrets.token_hex(8)
    plain = "val-" + secrets.token_hex(8)
    url = resolve("${URL}", where=WHERE, credentials={}, environ={"URL": f"postgresql://app:{password}@db/x"})
    resolve("${PLAIN}", where=WHERE, credentials={}, environ={"PLAIN": plain})
    assert password in url
    message = f"error in {url.replace('postgresql://', 'pg ')} while using {plain}"
    cleaned = scrub(message)
    assert password not in cleaned and plain not in cleaned
    assert "pg app:***@db/x" in cleaned


def test_scrub_masks_url_passwords_it_never_saw() -> None:
    assert scrub("failed: postgresql://app:unregistered1@db/x") == "failed: postgresql://app:***@db/x"


# -- dead-man and notification URLs: secrets as a whole and by their parts ---------------------

TOKENS = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=40)
URL_TEMPLATES = [
    "${URL}",  # the whole URL from one variable
    "https://hc-ping.com/${TOKEN}",
    "http://127.0.0.1:8000/ping/${TOKEN}/nightly",
    "json://hooks.example.com/hook?token=${TOKEN}&mode=x",
    "json://user:${TOKEN}@127.0.0.1:9/auth",
    "mailtos://etl:${TOKEN}@smtp.example.com?to=ops@example.com",
    "slack://${TOKEN}/B0000000/C0000000/#ops",
    "discord://123456789012/${TOKEN}",
]


@settings(max_examples=60, deadline=None)
@given(token=TOKENS, template=st.sampled_from(URL_TEMPLATES), suffix=st.sampled_from(["", "/start", "/fail"]))
def test_a_resolved_url_and_its_token_are_scrubbed_wherever_they_appear(token: str, template: str, suffix: str) -> None:
    whole = f"https://hc-ping.com/{token}"
    url = resolve(template, where=WHERE, credentials={"TOKEN": token, "URL": whole}, environ={}, url=True)
    messages = [
        f"POST {url}{suffix} failed",  # an HTTP client's message
        f"Server error '500' for url '{url.rstrip('/')}{suffix}'",
        f"invalid token ({token}) was specified",  # a library naming the token alone
    ]
    for message in messages:
        assert token not in scrub(message)


def test_a_whole_url_variable_is_registered_even_without_a_url_template() -> None:
    """``deadman: ${HEALTHCHECK_URL}``: the value holds the slashes, the text does not."""
    key = "0f8fad5b-d9cb-469f-a165-" + secrets.token_hex(6)
    url = resolve("${HC}", where=WHERE, credentials={}, environ={"HC": f"https://hc-ping.com/{key}"})
    assert key in url
    assert scrub(f"HTTP Request: POST {url}/start 200 OK") == "HTTP Request: POST ***/start 200 OK"
    assert key not in scrub(f"ping key {key} unknown")


def test_a_whole_url_dsn_is_registered_but_its_database_name_is_not() -> None:
    password = "pw-" + secrets.token_hex(8)
    dsn = f"postgresql://app:{password}@db.example.com/warehouse2024"
    assert resolve("${DATABASE_URL}", where=WHERE, credentials={}, environ={"DATABASE_URL": dsn}) == dsn
    assert scrub(f"cannot connect to {dsn}") == "cannot connect to ***"
    assert scrub('database "warehouse2024" does not exist') == 'database "warehouse2024" does not exist'


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://hc-ping.com/0f8fad5b-d9cb-469f-a165-70867728950e", ["0f8fad5b-d9cb-469f-a165-70867728950e"]),
        ("http://127.0.0.1:8000/ping/nightly", []),  # words, not tokens
        ("json://h:8/p?token=abcdefgh12&mode=x", ["abcdefgh12"]),
        ("mailto://etl:pw@smtp.example.com?to=o@example.com", ["pw", "o@example.com"]),
        ("slack://T1234ABCD/B1234ABCD/xoxbsecretsecret/#ops", ["T1234ABCD", "B1234ABCD", "xoxbsecretsecret"]),
        ("http://[::1", []),  # not a URL: nothing to take apart (the whole is still registered)
    ],
)
def test_url_secrets(url: str, parts: list[str]) -> None:
    assert sorted(url_secrets(url)) == sorted(parts)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hc-ping.com/0f8fad5b-d9cb-469f-a165-70867728950e/start", "https://hc-ping.com/…"),
        ("json://user:pw@127.0.0.1:9/hook?token=x", "json://127.0.0.1/…"),
        ("slack://TokenA/TokenB/TokenC", "slack://…"),
        ("not a url", "(a URL)"),
    ],
)
def test_redact_url_keeps_scheme_and_host_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_log_filter_scrubs_message_arguments_and_tracebacks() -> None:
    secret = "tok-" + secrets.token_hex(8)
    register_secret(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(LOG_FILTER)
    logger = logging.getLogger(f"test.scrub.{secret[-6:]}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("ping %s failed", f"https://h/{secret}")
        logger.warning(f"literal {secret} in the message, 100%")
        try:
            raise RuntimeError(f"boom with {secret}")
        except RuntimeError:
            logger.exception("failed at %s", secret)
        logger.warning("bad format %d", secret)  # a broken call still logs, scrubbed
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert secret not in text
    assert "ping https://h/*** failed" in text and "RuntimeError: boom with ***" in text
    assert "100%" in text and "bad format" in text
