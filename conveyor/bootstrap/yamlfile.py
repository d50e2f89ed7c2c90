"""Writing designs as YAML: round-trip dumps with ruamel.yaml in the file's own indentation, quoting
what PyYAML's YAML 1.1 rules would misread, written atomically.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import secrets
from pathlib import Path

import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from conveyor.design.models import TableDesign
from conveyor.lake.manifest import fsync_dir

DEFAULT_INDENT = (2, 4, 2)  # mapping, sequence, offset: "columns:\n  - name: id\n    type: bigint"
UNSAFE_NAME = re.compile(r"[./\\\x00-\x1f]")
STR_TAG = "tag:yaml.org,2002:str"
RESOLVER = yaml.resolver.Resolver()


def round_trip_loader() -> YAML:
    loader = YAML(typ="rt")
    loader.preserve_quotes = True
    return loader


def dump(doc: CommentedMap, indent: tuple[int, int, int] = DEFAULT_INDENT) -> str:
    """Render a design document (block style, no line wrapping)."""
    writer = YAML(typ="rt")
    writer.preserve_quotes = True
    writer.width = 4096
    writer.allow_unicode = True
    mapping, sequence, offset = indent
    writer.indent(mapping=mapping, sequence=sequence, offset=offset)
    out = io.StringIO()
    writer.dump(doc, out)
    return out.getvalue()


_SEQ_ITEM = re.compile(r"^( *)-( +)\S")
_KEY_LINE = re.compile(r"^( *)[^\s#-][^#]*:\s*(#.*)?$")
_NESTED_KEY = re.compile(r"^( +)[^\s#-]")


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) the file uses, so a merge keeps its style."""
    mapping, sequence, offset = DEFAULT_INDENT
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    found_map = found_seq = False
    for previous, line in itertools.pairwise(lines):
        parent = _KEY_LINE.match(previous)
        if parent is None:
            continue
        base = len(parent.group(1))
        item = _SEQ_ITEM.match(line)
        if item is not None and not found_seq:
            offset = max(0, len(item.group(1)) - base)
            sequence = offset + 1 + len(item.group(2))
            found_seq = True
        elif (nested := _NESTED_KEY.match(line)) is not None and not found_map and len(nested.group(1)) > base:
            mapping = len(nested.group(1)) - base
            found_map = True
        if found_map and found_seq:
            break
    if sequence < offset + 2:
        sequence = offset + 2
    return mapping, sequence, offset


def check_dump(text: str) -> str | None:
    """Why the project loader would reject this design text, or None when it accepts it."""
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        TableDesign.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        return f"the design bootstrap produced does not validate: {exc}"
    return None


def atomic_write(path: Path, text: str, mode: int | None = None) -> None:
    """Write a file all at once: a temp file beside it, fsync, ``os.replace``, fsync the folder.

    A new file gets the usual permissions (0666 less the umask, applied by ``os.open``); a
    replaced file keeps its own (``mode``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
