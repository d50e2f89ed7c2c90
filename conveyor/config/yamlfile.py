"""YAML with line numbers, and pydantic errors turned into ``file:line`` messages.

PyYAML's C loader composes a node tree that remembers where every key and item sits; we
keep that tree beside the plain data, so any error found later (by pydantic, or by a
semantic check) can point to the line the user has to change. The C loader is about 15x
faster than a round-trip loader, which matters for projects with thousands of designs.

Anchors and aliases (``&name`` / ``*name``) work, within a bound: a file of under 1 KB with
ten nested anchors ("billion laughs") would otherwise expand to 10^10 nodes and hang every
command. Before composing, a file that declares anchors is scanned event by event, and the
first alias that takes the expanded size past :data:`MAX_ALIAS_NODES` is refused.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from conveyor.errors import ConfigError, Location, ProjectError, did_you_mean

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: how many nodes all the aliases of one file may expand to, together
MAX_DEPTH = 100
"""Collections nested deeper than this are refused before composing (the C composer recurses, and crashes)."""
MAX_ALIAS_NODES = 100_000
_DEEP_INDENT = re.compile(rf"^[ -]{{{MAX_DEPTH + 1}}}", re.MULTILINE)


class YamlDoc:
    """A parsed YAML file: plain data plus a way to find the line of any path in it."""

    def __init__(self, path: Path, node: yaml.Node | None, data: Any, display: str | None = None):
        self.path = path
        self.display = display or str(path)
        self.node = node
        self.data = data

    def location(self, loc: Loc = ()) -> Location:
        """The location of the value at ``loc``, or of its nearest existing parent."""
        return Location(self.display, self.line(loc))

    def line(self, loc: Loc) -> int:
        """1-based line of the key (or item) at ``loc``; falls back to the closest parent."""
        node, line = self.node, 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            line, node = child
        return line


def _child(node: yaml.Node | None, part: str | int) -> tuple[int, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return key.start_mark.line + 1, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None


def load_yaml(path: Path, display: str | None = None) -> YamlDoc:
    """Read a YAML file; syntax errors and duplicate keys become a ``ConfigError`` with the line."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("the file is not UTF-8 text.", location=Location(shown)) from exc
    loader = _Loader(text)
    try:
        if "&" in text or _may_nest_deeply(text):  # the common case pays nothing
            _check_aliases(_Loader(text), shown)
        node = loader.get_single_node()
        # before construction, which flattens merge keys (<<: *base) into repeated keys
        _check_duplicates(node, shown)
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(
            f"this is not valid YAML: {problem}.",
            location=Location(shown, mark.line + 1 if mark else None, mark.column + 1 if mark else None),
            hint="Fix the syntax (indentation, a missing colon or quote) at that line.",
            code="yaml-syntax",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"this is not valid YAML: {exc}", location=Location(shown)) from None
    except RecursionError:
        raise _nesting_error(None, shown) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of keys to values at the top of the file.", location=Location(shown, 1))
    return YamlDoc(path, node, data, shown)


def _check_aliases(events: Any, shown: str) -> None:
    """Refuse a file whose aliases expand to more than ``MAX_ALIAS_NODES`` nodes.

    Counts, from the parser's events alone (nothing is composed or constructed), the size of
    every anchored value with the aliases inside it expanded, and adds that size for each
    alias; the alias that crosses the bound is the one reported.
    """
    sizes: dict[str, int] = {}
    open_: list[list[Any]] = [[None, 0]]  # [anchor, expanded size] of each open collection
    expanded = 0
    try:
        while events.check_event():
            event = events.get_event()
            if isinstance(event, yaml.AliasEvent):
                size = sizes.get(event.anchor, 1)
                expanded += size
                if expanded > MAX_ALIAS_NODES:
                    raise _alias_error(event, shown)
                open_[-1][1] += size
            elif isinstance(event, yaml.ScalarEvent):
                open_[-1][1] += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                open_.append([event.anchor, 1])
                if len(open_) > MAX_DEPTH + 1:
                    raise _nesting_error(event, shown)
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, size = open_.pop()
                open_[-1][1] += size
                if anchor is not None:
                    sizes[anchor] = size
    finally:
        events.dispose()


def _may_nest_deeply(text: str) -> bool:
    """Whether a file could hold collections nested deeper than ``MAX_DEPTH`` (then its events are scanned).

    Flow collections need as many brackets; block collections need as many indentation steps.
    """
    return text.count("[") + text.count("{") > MAX_DEPTH or _DEEP_INDENT.search(text) is not None


def _nesting_error(event: yaml.Event | None, shown: str) -> ConfigError:
    mark = event.start_mark if event is not None else None
    return ConfigError(
        f"collections are nested more than {MAX_DEPTH} deep here (no project file needs that many levels).",
        location=Location(shown, mark.line + 1 if mark else None, mark.column + 1 if mark else None),
        hint="Flatten the document.",
        code="yaml-nesting",
    )


def _alias_error(event: yaml.AliasEvent, shown: str) -> ConfigError:
    mark = event.start_mark
    return ConfigError(
        f'the alias "*{event.anchor}" takes this file past {MAX_ALIAS_NODES:,} values once its aliases '
        'are expanded (nested anchors that multiply, as in a "billion laughs" document).',
        location=Location(shown, mark.line + 1, mark.column + 1),
        hint="Write the values out, or use fewer nested aliases.",
        code="yaml-aliases",
    )


def _check_duplicates(node: yaml.Node | None, shown: str) -> None:
    """YAML allows a repeated key to silently win; a repeated key is almost always a mistake."""
    stack, seen_nodes = [node], set[int]()
    while stack:
        current = stack.pop()
        if id(current) in seen_nodes:  # an aliased node: checked once
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: set[object] = set()
            for key, value in current.value:
                if key.value in seen:
                    raise ConfigError(
                        f'the key "{key.value}" appears twice in the same mapping.',
                        location=Location(shown, key.start_mark.line + 1),
                        hint="Keep one of them.",
                        code="duplicate-key",
                    )
                seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def validate(model: type[M], doc: YamlDoc, what: str) -> M:
    """Validate a document against a model; every problem gets its own file:line message."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        problems: list[Any] = []
        seen: set[str] = set()
        for problem in _union_problems(model, doc, list(exc.errors()), what):
            if problem.render() not in seen:  # two union members can report the same thing
                seen.add(problem.render())
                problems.append(problem)
        raise ProjectError(problems) from None


def _union_problems(model: type[BaseModel], doc: YamlDoc, errors: list[Any], what: str) -> list[ConfigError]:
    """Problems in the words of the file, with pydantic's union member tags taken out of the path.

    A value that fits none of a union's members gets one error per member, each with a tag
    such as ``literal['full','selective']`` in its path. When the value has a member's shape
    (a list for a list member), only that member's errors are the user's problem; otherwise
    the members' expectations are merged into one message.
    """
    groups: dict[Loc, list[tuple[Any, Loc, Any]]] = {}
    plain: list[Any] = []
    for err in errors:
        loc, tag_at, member = _clean_loc(model, tuple(err["loc"]))
        if tag_at is None:
            plain.append({**err, "loc": loc})
        else:
            groups.setdefault(loc[:tag_at], []).append(({**err, "loc": loc}, loc, member))
    problems = [_problem(model, doc, err, what) for err in plain]
    for prefix, members in groups.items():
        deeper = [err for err, loc, _ in members if len(loc) > len(prefix)]
        if deeper:
            problems.extend(_problem(model, doc, err, what) for err in deeper)
            continue
        problems.append(_merged(doc, prefix, members))
    return problems


def _merged(doc: YamlDoc, loc: Loc, members: list[tuple[Any, Loc, Any]]) -> ConfigError:
    """One message for a value that fits none of a union's members."""
    where = ".".join(str(p) for p in loc) or "(top level)"
    wanted: list[str] = []
    words: list[str] = []
    for err, _, member in members:
        if err["type"] == "literal_error":
            allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            words.extend(allowed)
            text = f"one of {', '.join(allowed)}"
        elif err["type"] == "list_type":
            items = typing.get_args(member)[0] if typing.get_args(member) else None
            choices = [str(c) for c in typing.get_args(items)] if typing.get_origin(items) is typing.Literal else []
            words.extend(choices)
            text = "a list" + (f" of {', '.join(choices)}" if choices else "")
        else:
            text = _WANTED.get(err["type"], str(err["msg"]).rstrip("."))
        if text not in wanted:
            wanted.append(text)
    value = members[0][0].get("input")
    hint = did_you_mean(str(value), words).strip() if isinstance(value, str) else ""
    return ConfigError(
        f"{where}: {_shown(value)} is not valid here; expected {', or '.join(wanted)}.",
        location=doc.location(loc),
        hint=hint or None,
        code="invalid-value",
    )


def _clean_loc(model: type[BaseModel], loc: Loc) -> tuple[Loc, int | None, Any]:
    """``loc`` without union member tags; the index of the first tag; the member it names."""
    current: Any = model
    out: list[str | int] = []
    tag_at: int | None = None
    member: Any = None
    for part in loc:
        options = _members(current)
        if options is not None and isinstance(part, str):
            current = next((m for m in options if _tag_fits(m, part)), None)
            if tag_at is None:
                tag_at, member = len(out), current
            continue
        out.append(part)
        current = _raw_step(_strip(current), part) if current is not None else None
    return tuple(out), tag_at, member


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] and Optional[X] down to X (a union of several types stays a union)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _members(annotation: Any) -> list[Any] | None:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(annotation) if a is not type(None)]
    return None


def _tag_fits(member: Any, tag: str) -> bool:
    """Whether pydantic's tag for a union member (``list[...]``, ``literal[...]``, ``str``, a class) is ``member``."""
    origin = typing.get_origin(member)
    head = tag.partition("[")[0].lower()
    if origin is typing.Literal:
        return head == "literal"
    if origin is not None:
        return head == getattr(origin, "__name__", "").lower()
    return isinstance(member, type) and tag in (member.__name__, member.__name__.lower())


def _raw_step(annotation: Any, part: str | int) -> Any:
    """Follow one loc element through a model/list/dict annotation, keeping unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, Sequence, tuple) and args:
        return args[0]
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


def _problem(model: type[BaseModel], doc: YamlDoc, err: Any, what: str) -> ConfigError:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    where = ".".join(str(p) for p in loc) or "(top level)"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(model, loc[:-1])
        hint = did_you_mean(key, allowed).strip() or f"Allowed keys: {', '.join(sorted(allowed))}."
        if key.count(")") > key.count("("):  # the rest of decimal(38,2) after YAML split it at the comma
            hint = "A value with a comma inside {...} needs quotes, e.g. {type: 'decimal(38,2)'}."
        return ConfigError(
            f'unknown key "{key}" in {what}.',
            location=doc.location(loc),
            hint=hint + " Remove or rename it.",
            code="unknown-key",
        )
    if kind == "missing":
        parent = ".".join(str(p) for p in loc[:-1])
        return ConfigError(
            f'missing required key "{loc[-1]}"' + (f" under {parent}" if parent else "") + f" in {what}.",
            location=doc.location(loc[:-1]),
            hint=f'Add "{loc[-1]}:" there.',
            code="missing-key",
        )
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        value = err.get("input")
        suggestion = _synonym(value, allowed) or did_you_mean(str(value), allowed).strip()
        return ConfigError(
            f"{where}: {_shown(value)} is not one of {', '.join(allowed)}.",
            location=doc.location(loc),
            hint=suggestion or None,
            code="invalid-value",
        )
    if kind in _WANTED:
        field = _field(model, loc)
        about = str(field.description) if field is not None and field.description else ""
        keys = _allowed_keys(model, loc)
        if kind in ("model_type", "dict_type") and keys:
            about = (about + " " if about else "") + f"Its keys: {', '.join(keys)}."
        return ConfigError(
            f"{where}: expected {_WANTED[kind]}, not {_shown(err.get('input'))}.",
            location=doc.location(loc),
            hint=about or None,
            code="invalid-value",
        )
    message = str(err["msg"]).rstrip(".")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return ConfigError(f"{where}: {message}.", location=doc.location(loc), hint=_expected(err), code="invalid-value")


#: what a pydantic type error wanted, in the words of a YAML file
_WANTED = {
    "model_type": "a mapping (keys indented under it)",
    "model_attributes_type": "a mapping (keys indented under it)",
    "dict_type": "a mapping (keys indented under it)",
    "list_type": "a list ([a, b] or one '- item' per line)",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}

#: words other tools use for a value Conveyor names differently (dbt's materializations)
_SYNONYMS = {"table": "ctas", "model": "ctas", "materialized_view": "ctas", "ephemeral": "view"}


def _synonym(value: Any, allowed: list[str]) -> str | None:
    if isinstance(value, str) and _SYNONYMS.get(value.lower()) in allowed:
        word = _SYNONYMS[value.lower()]
        return f'Did you mean "{word}"? Conveyor calls it "{word}" ({", ".join(allowed)} are the choices).'
    return None


def _shown(value: Any) -> str:
    """A value from the file as the user wrote it, shortened."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 60 else text[:57] + '..."'


def _field(model: type[BaseModel], loc: Loc) -> Any:
    """The pydantic field at ``loc``, when it is a model's field."""
    parent: Any = model
    for part in loc[:-1]:
        parent = _step(parent, part)
        if parent is None:
            return None
    parent = _unwrap(parent)
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        for name, field in parent.model_fields.items():
            if loc and loc[-1] in (name, field.alias):
                return field
    return None


def _expected(err: Any) -> str | None:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return f"Expected {ctx['expected']}."
    return None


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _step(annotation: Any, part: str | int) -> Any:
    """Follow one loc element through a model/list/dict annotation."""
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return _unwrap(field.annotation)
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, Sequence, tuple) and args:
        return _unwrap(args[0])
    if origin in (dict, Mapping) and len(args) == 2:
        return _unwrap(args[1])
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Union/Annotated down to the first model, list or dict inside."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if inner is not type(None) and (
                typing.get_origin(inner) in (list, dict) or (isinstance(inner, type) and issubclass(inner, BaseModel))
            ):
                return inner
    return annotation
