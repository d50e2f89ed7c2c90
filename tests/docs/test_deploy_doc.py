"""docs/deploy.md stays true to the code: its JSON parses, its IAM policy grants exactly the
actions the S3 store needs, its unit file runs a real command, the variables it sets are ones
Conveyor reads, and every link in it (and to it) leads somewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DEPLOY = DOCS / "deploy.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DEPLOY.read_text(), flags=re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_the_json_blocks_parse_and_the_policy_grants_exactly_what_the_lake_uses() -> None:
    documents = [json.loads(block) for block in _blocks("json")]
    policy = next(d for d in documents if "Statement" in d)
    actions = set()
    for statement in policy["Statement"]:
        granted = statement["Action"]
        actions |= {granted} if isinstance(granted, str) else set(granted)
    assert actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    lifecycle = next(d for d in documents if "Rules" in d)
    assert any("AbortIncompleteMultipartUpload" in rule for rule in lifecycle["Rules"])
    assert not any("Expiration" in rule for rule in lifecycle["Rules"])  # retention is Conveyor's job


def test_the_unit_runs_the_scheduler_and_sets_variables_conveyor_reads() -> None:
    from click.testing import CliRunner

    from conveyor.cli.main import cli

    (unit,) = [b for b in _blocks("ini") if "ExecStart=" in b]
    command = re.search(r"^ExecStart=\S*/conveyor (.+)$", unit, flags=re.M)
    assert command is not None and command.group(1).split() == ["scheduler"]
    assert CliRunner().invoke(cli, ["scheduler", "--help"]).exit_code == 0
    source = "\n".join(p.read_text() for p in (ROOT / "conveyor").rglob("*.py"))
    env_file = next(b for b in _blocks("sh") if "CONVEYOR_HOST_ID=" in b)
    for name in re.findall(r"^(CONVEYOR_\w+)=", env_file, flags=re.M):
        assert f'"{name}"' in source, f"{name} is set in docs/deploy.md but Conveyor never reads it"
    assert "lease_s" in DEPLOY.read_text()


LINKING = ["deploy.md", "architecture.md", "extract.md", "benchmarks.md", "../README.md", "../examples/shop/README.md"]


@pytest.mark.parametrize("doc", LINKING)
def test_links_to_and_from_the_deploy_doc_lead_somewhere(doc: str) -> None:
    path = (DOCS / doc).resolve()
    links = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    checked = 0
    for link in links:
        if "://" in link or link.startswith("mailto:"):
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if doc != "deploy.md" and file != DEPLOY and not (target == "" and anchor):
            continue  # other docs: only their links to deploy.md, and their own anchors
        assert file.exists(), f"{doc}: {link} points to a missing file"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{doc}: {link} points to a missing heading"
        checked += 1
    assert checked > 0
