"""Upstream table names as a design's ``source_table`` writes them: ``schema.table``, quoted where a part has a dot.

An upstream table may be named ``dotted.name``; ``public.dotted.name`` cannot say which dot
separates the schema, so such a part is written in double quotes (``public."dotted.name"``,
a quote inside doubled), as SQL writes identifiers.
"""

from __future__ import annotations


def split_upstream(text: str) -> tuple[str | None, str]:
    """``(schema, table)`` of a ``source_table``; an unquoted name splits at its last dot."""
    if '"' not in text:
        schema, _, table = text.rpartition(".")
        return (schema or None), table
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            if quoted and text[index + 1 : index + 2] == '"':
                current.append('"')
                index += 1
            else:
                quoted = not quoted
        elif char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    if len(parts) == 1:
        return None, parts[0]
    return ".".join(parts[:-1]), parts[-1]


def quote_part(name: str) -> str:
    """A part as source_table writes it: quoted when it holds a dot or a quote."""
    return '"' + name.replace('"', '""') + '"' if "." in name or '"' in name else name


def join_upstream(schema: str | None, table: str) -> str:
    """The ``source_table`` text of an upstream (schema, table)."""
    return f"{quote_part(schema)}.{quote_part(table)}" if schema else quote_part(table)


def ambiguous(text: str) -> bool:
    """Whether an unquoted ``source_table`` has more than one dot (which one splits schema from table?)."""
    return '"' not in text and text.count(".") > 1
