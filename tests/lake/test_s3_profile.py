"""Credentials from a profile of the shared AWS files, with no keys in the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.cli import CliResult
from testkit.s3 import ACCESS_KEY, SECRET_KEY

from conveyor.lake.lake import Lake
from conveyor.lake.store import shared_profile
from conveyor.project import Project


def write_profiles(home: Path, profile: str, *, region: str | None = "us-east-1") -> None:
    aws = home / ".aws"
    aws.mkdir(parents=True, exist_ok=True)
    (aws / "credentials").write_text(
        f"[other]\naws_access_key_id = NOTTHISONE\naws_secret_access_key = nope\n\n"
        f"[{profile}]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    section = profile if profile == "default" else f"profile {profile}"
    (aws / "config").write_text(f"[{section}]\n" + (f"region = {region}\n" if region else ""))


def only_profiles(monkeypatch: pytest.MonkeyPatch, home: Path, profile: str | None) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    if profile is not None:
        monkeypatch.setenv("AWS_PROFILE", profile)


@pytest.mark.parametrize("profile", ["conveyor-test", None])
def test_the_shared_files_give_the_profiles_keys_and_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str | None
) -> None:
    write_profiles(tmp_path, profile or "default", region="eu-west-3")
    only_profiles(monkeypatch, tmp_path, profile)
    found = shared_profile()
    assert found is not None
    assert (found.access_key_id, found.region) == (ACCESS_KEY, "eu-west-3")
    assert SECRET_KEY not in repr(found)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROM-THE-ENVIRONMENT")
    assert shared_profile() is None  # keys in the environment win, as in every AWS SDK


def test_a_project_extracts_and_loads_with_keys_only_in_a_profile(
    s3_project: Callable[..., Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = s3_project()
    write_profiles(tmp_path / "home", "conveyor-test")
    only_profiles(monkeypatch, tmp_path / "home", "conveyor-test")
    result = cli("run", cwd=root)
    assert result.code == 0, result.output
    lake = Lake(Project.load(root).lake_location)
    latest = lake.latest("shop", "shop.orders")
    assert latest is not None and latest.location.startswith("s3://")  # the manifest PUT went through
