"""``bootstrap --update``: merge upstream changes into an existing design and keep every hand edit,
comment and key order (see docs/bootstrap.md for the rules).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from conveyor.bootstrap.design import (
    COLUMN_KEYS,
    CONSTRAINT_KEYS,
    TABLE_KEYS,
    choose,
    column_map,
    comment,
    flow,
    note_odd,
    scalar,
    unique_seq,
)
from conveyor.bootstrap.plan import DecimalLimit, SourcePlan, Write
from conveyor.bootstrap.report import TableReport
from conveyor.bootstrap.yamlfile import check_dump, dump, guess_indent, round_trip_loader
from conveyor.design.models import TableDesign
from conveyor.design.types import parse_type
from conveyor.project import Relation
from conveyor.sources.base import TableInfo


def merge(
    doc: CommentedMap, design: TableDesign, info: TableInfo, limit: DecimalLimit = DecimalLimit()
) -> tuple[list[str], list[str]]:
    """Merge the reflected table into a design document in place; return (changes, notes).

    ``design`` is the validated view of ``doc`` (as the project loader read it): decisions
    are made on it, edits are made on ``doc`` so comments, quoting and key order survive.
    Types and not_null become what a new design would say (:func:`choose`).
    """
    changes: list[str] = []
    notes: list[str] = []
    upstream = {c.name: c for c in info.columns}

    if design.description is None and (text := comment(info)) is not None:
        _put(doc, "description", scalar(text), TABLE_KEYS)
        changes.append("description")

    seq = doc.get("columns")
    if not isinstance(seq, CommentedSeq):
        seq = CommentedSeq()
        _put(doc, "columns", seq, TABLE_KEYS)
    items = {str(item.get("name")): item for item in seq if isinstance(item, CommentedMap)}
    present = {c.name for c in design.columns}
    removed = [c for c in design.columns if c.name not in upstream]
    for column in design.columns:
        item = items.get(column.name)
        up = upstream.get(column.name)
        if up is None or item is None:
            continue
        choice = choose(up, limit)
        if choice.type is None:
            if not column.skipped:
                _put(item, "skipped", True, COLUMN_KEYS)
                item.yaml_add_eol_comment(choice.note, "skipped")
                changes.append(f"~{column.name} skipped (no exact design type)")
        elif column.type is None or parse_type(column.type) != choice.type:
            _put(item, "type", scalar(str(choice.type)), COLUMN_KEYS)
            if choice.note is not None:
                item.yaml_add_eol_comment(choice.note, "type")
            changes.append(f"~{column.name} type {column.type or 'none'}->{choice.type}")
        if column.not_null != choice.not_null:
            if choice.not_null:
                _put(item, "not_null", True, COLUMN_KEYS)
                changes.append(f"~{column.name} not null")
            else:
                item.pop("not_null", None)
                changes.append(f"~{column.name} nullable")
                if column.identity:
                    notes.append(f"{column.name} is marked identity but is nullable upstream")
        if column.description is None and (text := comment(up)) is not None:
            _put(item, "description", scalar(text), COLUMN_KEYS)
            changes.append(f"~{column.name} description")
    for column in removed:
        for index in range(len(seq) - 1, -1, -1):
            if isinstance(seq[index], dict) and str(seq[index].get("name")) == column.name:
                _delete_item(seq, index)
        changes.append(f"-{column.name}")
    added = [column_map(c, limit) for c in info.columns if c.name not in present]
    if added:
        _append_items(seq, added)
        changes.extend(f"+{item['name']}" for item in added)

    changes.extend(_merge_constraints(doc, design, info))

    gone = {c.name for c in removed}
    if design.extract.split_by in gone:
        notes.append(f"extract.split_by names {design.extract.split_by}, which is gone upstream")
    if design.extract.incremental is not None and design.extract.incremental.cursor in gone:
        notes.append(f"extract.incremental.cursor names {design.extract.incremental.cursor}, which is gone upstream")
    lost_natural = [c for c in design.constraints.natural_key if c in gone]
    if lost_natural:
        notes.append(f"constraints.natural_key names {', '.join(lost_natural)}, gone upstream")
    return changes, notes


def _merge_constraints(doc: CommentedMap, design: TableDesign, info: TableInfo) -> list[str]:
    changes: list[str] = []
    want_pk = list(info.primary_key)
    want_unique = [list(u) for u in info.unique]
    pk_changed = design.constraints.primary_key != want_pk
    unique_changed = {tuple(u) for u in design.constraints.unique} != {tuple(u) for u in want_unique}
    if not pk_changed and not unique_changed:
        return changes
    constraints = doc.get("constraints")
    if not isinstance(constraints, CommentedMap):
        constraints = CommentedMap()
        _put(doc, "constraints", constraints, TABLE_KEYS)
    if pk_changed:
        old = ", ".join(design.constraints.primary_key) or "none"
        new = ", ".join(want_pk) or "none"
        if want_pk:
            _put(constraints, "primary_key", flow(want_pk), CONSTRAINT_KEYS)
        else:
            constraints.pop("primary_key", None)
        changes.append(f"primary key ({old})->({new})")
    if unique_changed:
        old_set = {tuple(u) for u in design.constraints.unique}
        new_set = {tuple(u) for u in want_unique}
        if want_unique:
            _put(constraints, "unique", unique_seq(want_unique), CONSTRAINT_KEYS)
        else:
            constraints.pop("unique", None)
        changes.extend(f"+unique ({', '.join(u)})" for u in want_unique if tuple(u) not in old_set)
        changes.extend(f"-unique ({', '.join(u)})" for u in design.constraints.unique if tuple(u) not in new_set)
    if not constraints:
        doc.pop("constraints", None)
    return changes


def _put(mapping: CommentedMap, key: str, value: object, order: Sequence[str]) -> None:
    """Set a key, keeping its place if it exists, else inserting it in canonical order."""
    if key in mapping:
        mapping[key] = value
        return
    rank = order.index(key) if key in order else len(order)
    position = 0
    for index, existing in enumerate(mapping):
        if existing in order and order.index(existing) < rank:
            position = index + 1
    mapping.insert(position, key, value)


def _trailing_slot(seq: CommentedSeq, index: int, *, create: bool) -> tuple[list[Any], int] | None:
    """The comment entry (and position in it) holding what follows ``seq[index]``."""
    item = seq[index]
    if isinstance(item, CommentedMap) and len(item) and not item.fa.flow_style():
        last = list(item)[-1]
        value = item[last]
        if isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
            return None  # the comment sits deeper, in a nested block collection
        if last not in item.ca.items and not create:
            return None
        return item.ca.items.setdefault(last, [None, None, None, None]), 2
    if index not in seq.ca.items and not create:
        return None
    return seq.ca.items.setdefault(index, [None, None, None, None]), 0


def _take_trailing(seq: CommentedSeq, index: int) -> list[str]:
    """Remove and return the full comment lines after ``seq[index]`` (its own end-of-line comment stays)."""
    slot = _trailing_slot(seq, index, create=False)
    if slot is None or slot[0][slot[1]] is None:
        return []
    entry, position = slot
    token = entry[position]
    if not isinstance(getattr(token, "value", None), str):
        return []
    first, *rest = token.value.split("\n")
    if rest and rest[-1] == "":
        rest.pop()
    if first:
        token.value = first + "\n"
    else:
        entry[position] = None
    return rest


def _give_trailing(seq: CommentedSeq, index: int, lines: list[str]) -> None:
    """Put comment lines after ``seq[index]``."""
    if not lines:
        return
    slot = _trailing_slot(seq, index, create=True)
    if slot is None:
        return
    entry, position = slot
    text = "\n".join(lines) + "\n"
    token = entry[position]
    if token is None:
        entry[position] = CommentToken("\n" + text, CommentMark(0), None)
    else:
        token.value = token.value + ("" if token.value.endswith("\n") else "\n") + text


def _delete_item(seq: CommentedSeq, index: int) -> None:
    """Delete ``seq[index]``, keeping the comment lines that introduce the next item or section."""
    item = seq[index]
    try:
        lines = _take_trailing(seq, index)
        if isinstance(item, CommentedMap) and not item.fa.flow_style():
            body = item.lc.col  # deeper lines commented the removed column itself
            lines = [line for line in lines if len(line) - len(line.lstrip()) < body or not line.strip()]
    except Exception:  # ruamel internals: losing a comment is better than failing the merge
        lines = []
    del seq[index]
    if not lines:
        return
    try:
        if index > 0:
            _give_trailing(seq, index - 1, lines)
        elif len(seq):
            text = "\n".join(line.strip().removeprefix("#").strip() for line in lines if line.strip())
            seq.yaml_set_comment_before_after_key(0, before=text, indent=item.lc.col - 2 if item.lc.col >= 2 else 0)
    except Exception:
        pass


def _append_items(seq: CommentedSeq, items: list[CommentedMap]) -> None:
    """Append items after the last one, moving the comments that followed it after them."""
    try:
        lines = _take_trailing(seq, len(seq) - 1) if len(seq) else []
    except Exception:
        lines = []
    seq.extend(items)
    with contextlib.suppress(Exception):
        _give_trailing(seq, len(seq) - 1, lines)


def plan_update(plan: SourcePlan, relation: Relation, info: TableInfo) -> None:
    path = relation.doc.path
    report = TableReport(relation.name, plan.name, info.qualified, "unchanged", path, len(relation.design.columns))
    try:
        original = path.read_text(encoding="utf-8")
        doc = round_trip_loader().load(original)
    except (OSError, UnicodeDecodeError) as exc:
        report.action, report.error = "failed", f"cannot read {relation.doc.display}: {exc}."
        plan.reports.append(report)
        return
    except Exception as exc:  # ruamel's own parser errors: PyYAML accepted the file, ruamel did not
        report.action, report.error = "failed", f"cannot merge into {relation.doc.display}: {exc}."
        plan.reports.append(report)
        return
    if not isinstance(doc, CommentedMap):
        report.action, report.error = "failed", f"{relation.doc.display} is not a mapping."
        plan.reports.append(report)
        return
    changes, notes = merge(doc, relation.design, info, plan.limit)
    touched = {c.lstrip("+~").split(" ")[0] for c in changes}
    note_odd(plan, relation.name, [c for c in info.columns if c.name in touched])
    report.notes.extend(notes)
    if not changes:
        plan.reports.append(report)
        return
    text = dump(doc, guess_indent(original))
    problem = check_dump(text)
    if problem is not None:
        report.action, report.error = "failed", problem
        report.notes.append("design left unchanged")
        plan.reports.append(report)
        return
    report.action, report.changes = "updated", changes
    report.columns = len(doc.get("columns") or [])
    plan.reports.append(report)
    plan.writes.append(Write(path, text, report, mode=_mode(path)))


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None
