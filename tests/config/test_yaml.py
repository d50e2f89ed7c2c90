"""YAML loading and validation: every problem carries a code and the 1-based line to fix."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.config.settings import ProjectSettings
from conveyor.config.yamlfile import MAX_ALIAS_NODES, load_yaml, validate
from conveyor.design.models import TableDesign
from conveyor.errors import ConfigError, ConveyorError, ProjectError

SETTINGS_OK = """\
name: p
sources:
  shop:
    type: sqlite
    dsn: up.db
environments:
  dev:
    type: duckdb
    dsn: w.duckdb
"""


def problems_of(tmp_path: Path, text: str, model: type = ProjectSettings) -> list[ConveyorError]:
    """Load and validate ``text``; return every problem raised (load or validation)."""
    path = tmp_path / "file.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        validate(model, load_yaml(path, "file.yaml"), "the file")
    except ProjectError as exc:
        return list(exc.problems)
    except ConfigError as exc:
        return [exc]
    return []


def only(problems: list[ConveyorError]) -> ConveyorError:
    assert len(problems) == 1, [p.render() for p in problems]
    return problems[0]


def pick(problems: list[ConveyorError], code: str) -> ConveyorError:
    """The one problem with ``code`` (others, such as a key missing after a typo, may exist)."""
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, [p.render() for p in problems]
    return found[0]


def test_valid_settings_have_no_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path, SETTINGS_OK) == []


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: p\nsources:\n  a: [1\n", 4),  # unclosed flow sequence: found at the end
        ("name: p\nsources:\n  a:\n    type: sqlite\n   dsn: y\n", 5),  # bad indentation
        ("name: p\ndescription: 'open\n", 3),  # unterminated quote
        ("name: p\nsources: {a: 1\nlake: x\n", 3),
    ],
)
def test_yaml_syntax_error_has_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    problem = only(problems_of(tmp_path, text))
    assert isinstance(problem, ConfigError)
    assert problem.code == "yaml-syntax"
    assert problem.location is not None
    assert str(problem.location.path) == "file.yaml"
    assert problem.location.line == line
    assert problem.render().startswith(f"file.yaml:{line}:")
    assert "not valid YAML" in problem.message


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("name: p\ndescription: a\nname: q\n", 3, "name"),
        ("name: p\nsources:\n  a:\n    type: sqlite\n    dsn: a\n    dsn: b\n", 6, "dsn"),
        ("name: s.t\ncolumns:\n  - name: a\n    type: text\n    type: bigint\n", 5, "type"),
    ],
)
def test_duplicate_key_points_at_the_second_key(tmp_path: Path, text: str, line: int, key: str) -> None:
    problem = only(problems_of(tmp_path, text))
    assert problem.code == "duplicate-key"
    assert problem.location is not None and problem.location.line == line
    assert f'"{key}"' in problem.message


@pytest.mark.parametrize(
    ("model", "text", "line", "suggestion"),
    [
        (ProjectSettings, "name: p\ndescriptoin: x\n", 2, "description"),
        (ProjectSettings, SETTINGS_OK + "lake:\n  pth: x\n", 11, "path"),
        (ProjectSettings, SETTINGS_OK.replace("    dsn: up.db", "    dsnn: up.db"), 5, "dsn"),
        (ProjectSettings, SETTINGS_OK + "defaults:\n  serch_path: [a]\n", 11, "search_path"),
        (
            TableDesign,
            "name: s.t\ncolumns:\n  - name: a\n    type: text\n  - name: b\n    descriptoin: x\n",
            6,
            "description",
        ),
        (TableDesign, "name: s.t\nconstraints:\n  primary_keys: [a]\n", 3, "primary_key"),
        (TableDesign, "name: s.t\nextract:\n  incremental:\n    cursor: x\n    lagg: 1\n", 5, "lag"),
        (TableDesign, "name: s.t\ndepend_on: [a.b]\n", 2, "depends_on"),
    ],
)
def test_unknown_key_suggests_the_right_one(tmp_path: Path, model: type, text: str, line: int, suggestion: str) -> None:
    problem = pick(problems_of(tmp_path, text, model), "unknown-key")
    assert problem.location is not None and problem.location.line == line
    assert f'Did you mean "{suggestion}"?' in problem.render()


def test_unknown_key_far_from_any_lists_the_allowed_keys(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "name: s.t\nzzzzzz: 1\n", TableDesign))
    assert problem.code == "unknown-key"
    assert "Did you mean" not in problem.render()
    assert "Allowed keys:" in problem.render() and "depends_on" in problem.render()


@pytest.mark.parametrize(
    ("model", "text", "line", "key"),
    [
        (ProjectSettings, "description: no name\n", 1, "name"),
        # the line of the parent mapping: the source "shop"
        (ProjectSettings, "name: p\nsources:\n  shop:\n    dsn: up.db\n", 3, "type"),
        (ProjectSettings, "name: p\nenvironments:\n  dev:\n    type: duckdb\n", 3, "dsn"),
        (TableDesign, "kind: view\n", 1, "name"),
        (TableDesign, "name: s.t\ncolumns:\n  - name: a\n  - type: text\n", 4, "name"),
        (TableDesign, "name: s.t\nextract:\n  incremental:\n    lag: 1\n", 3, "cursor"),
    ],
)
def test_missing_required_key_points_at_its_parent(tmp_path: Path, model: type, text: str, line: int, key: str) -> None:
    problem = only(problems_of(tmp_path, text, model))
    assert problem.code == "missing-key"
    assert problem.location is not None and problem.location.line == line
    assert f'missing required key "{key}"' in problem.message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("name: s.t\ncolumns:\n  - name: a\n    type: decimall(10,2)\n", 4, '"decimall" is not a known column type'),
        ("name: s.t\ncolumns:\n  - name: a\n    type: decimal\n", 4, "needs a precision"),
        ("name: s.t\ncolumns:\n  - name: a\n    type: bigint(3)\n", 4, "takes no parameters"),
        ("name: s.t\ncolumns:\n  - name: a\n    type: decimal(5,9)\n", 4, "out of range"),
        ("name: s.t\nkind: table\n", 2, "kind"),
        ("name: t\n", 1, 'must be "schema.table"'),
    ],
)
def test_invalid_value_has_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    problem = only(problems_of(tmp_path, text, TableDesign))
    assert problem.code == "invalid-value"
    assert problem.location is not None and problem.location.line == line
    assert fragment in problem.render()


def test_settings_invalid_values(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, SETTINGS_OK + "lake:\n  keep: 0\n  compression: lz4\n")
    assert [(p.code, p.location.line if p.location else None) for p in problems] == [
        ("invalid-value", 11),
        ("invalid-value", 12),
    ]
    assert "greater than or equal to 1" in problems[0].render()
    assert "zstd" in problems[1].render()


def test_all_problems_of_one_file_are_reported_together(tmp_path: Path) -> None:
    text = "name: s.t\nkindd: ctas\ncolumns:\n  - name: a\n    type: nope\n  - nam: b\n"
    problems = problems_of(tmp_path, text, TableDesign)
    found = sorted((p.code, p.location.line if p.location else None) for p in problems)
    assert found == [("invalid-value", 5), ("missing-key", 6), ("unknown-key", 2), ("unknown-key", 6)]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    problem = only(problems_of(tmp_path, text))
    assert isinstance(problem, ConfigError)
    assert "expected a mapping" in problem.message


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml(path, "latin1.yaml")


# -- anchors and aliases: they work, within a bound (a "billion laughs" file must not hang) ---


def _nested_anchors(depth: int, fanout: int) -> tuple[str, int, Any]:
    """A file of ``depth`` anchors, each a list of ``fanout`` aliases of the one before.

    Returns the text, the number of values the aliases expand to, and the data it means.
    """
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fanout) + "]"]
    size, through_aliases, value = fanout + 1, 0, ["lol"] * fanout
    for level in range(1, depth + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * fanout) + "]")
        through_aliases += fanout * size
        size = 1 + fanout * size
        value = [value] * fanout
    return "\n".join(lines) + "\n", through_aliases, value


def test_a_billion_laughs_is_refused_at_the_alias_quickly(tmp_path: Path) -> None:
    text, expanded, _ = _nested_anchors(9, 10)  # ten anchors, 10^10 values, under 1 KB
    assert len(text) < 1024 and expanded > 10**9
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    began = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_yaml(path, "bomb.yaml")
    assert time.monotonic() - began < 1.0
    error = info.value
    assert error.code == "yaml-aliases" and error.exit_code == 2
    assert error.location is not None and error.location.path == "bomb.yaml"
    line = text.splitlines()[(error.location.line or 0) - 1]
    assert line.startswith("a") and "*a" in line and error.hint


@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 12), fanout=st.integers(1, 12))
def test_nested_aliases_load_exactly_or_are_refused_by_their_expanded_size(depth: int, fanout: int) -> None:
    text, expanded, value = _nested_anchors(depth, fanout)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file.yaml"
        path.write_text(text, encoding="utf-8")
        began = time.monotonic()
        try:
            doc = load_yaml(path, "file.yaml")
        except ConfigError as exc:
            assert exc.code == "yaml-aliases"
            assert expanded > MAX_ALIAS_NODES
        else:
            assert expanded <= MAX_ALIAS_NODES
            assert doc.data[f"a{depth}"] == value
        assert time.monotonic() - began < 1.0


def test_ordinary_anchors_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = """\
name: shop.customers
description: &about People & the things they buy
columns:
  - &id {name: id, type: bigint, not_null: true}
  - <<: *id
    name: parent_id
    not_null: false
  - {name: note, type: text, description: *about}
"""
    design = validate(TableDesign, load_yaml(_write(tmp_path, text), "file.yaml"), "the design")
    assert [(c.name, c.type, c.not_null) for c in design.columns] == [
        ("id", "bigint", True),
        ("parent_id", "bigint", False),
        ("note", "text", False),
    ]
    assert design.columns[2].description == "People & the things they buy"


def test_many_small_aliases_within_the_bound_load(tmp_path: Path) -> None:
    columns = "".join(f"  - {{<<: *text, name: c{i}}}\n" for i in range(5000))
    text = "name: s.t\ndefaults: &text {type: text, not_null: true}\ncolumns:\n" + columns
    doc = load_yaml(_write(tmp_path, text), "file.yaml")
    assert len(doc.data["columns"]) == 5000 and doc.data["columns"][-1]["type"] == "text"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "file.yaml"
    path.write_text(text, encoding="utf-8")
    return path


PIPELINE = "schedule: nightly at 02:30 UTC\nenvironments: {primary: dev}\nsteps: %s\n"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("transform", 'steps: "transform" is not valid here; expected one of full, selective, validation, or a list'),
        ("3", "steps: 3 is not valid here"),
        ("{a: 1}", "steps: a mapping is not valid here"),
        ("[extract, transfrom]", 'steps.1: "transfrom" is not one of extract, load, update, validate'),
    ],
)
def test_a_value_fitting_no_member_of_a_union_is_one_plain_problem(tmp_path: Path, value: str, fragment: str) -> None:
    """pydantic reports a union per member, tagged `literal[...]`/`list[...]`: the user sees one message."""
    from conveyor.config.pipelines import PipelineConfig

    problem = only(problems_of(tmp_path, PIPELINE % value, PipelineConfig))
    text = problem.render()
    assert fragment in text
    assert "literal[" not in text and "list[" not in text
    assert problem.location is not None and problem.location.line == 3


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
@settings(max_examples=30, deadline=None)
def test_no_union_tag_reaches_the_user(word: str) -> None:
    from conveyor.config.pipelines import PRESETS, PipelineConfig

    with tempfile.TemporaryDirectory() as folder:
        for value in (word, f"[{word}]"):
            problems = problems_of(Path(folder), PIPELINE % value + "timeout: [1]\n", PipelineConfig)
            if word in PRESETS and value == word:
                assert len(problems) == 1  # only the timeout
            for problem in problems:
                assert "literal[" not in problem.render() and "list[" not in problem.render()


def test_an_unknown_column_type_suggests_the_near_one_and_lists_them() -> None:
    from conveyor.design.types import parse_type

    with pytest.raises(
        ValueError, match=r'"bigitn" is not a known column type; did you mean "bigint"\? Design types: '
    ):
        parse_type("bigitn")
    with pytest.raises(ValueError, match=r'"zzz" is not a known column type\. Design types: bigint, boolean'):
        parse_type("zzz")
