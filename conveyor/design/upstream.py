"""Upstream table names as a design's ``source_table`` writes them: ``schema.table``, quoted where a part has a dot.

An upstream table may be named ``dotted.name``; ``public.dotted.name`` cannot say which dot
separates the schema, so such a part is written in double quotes (``public."dotted.name"``,
a quote inside doubled), as SQL writes identifiers.
"""

from __future__ import annotations


def split_upstream(text: str) -> tuple[str | None, str]:
    """``(schema, table)`` of a ``source_table``.

    A part that starts with a double quote runs to its closing quote (``""`` is a quote inside
    it); any other part runs to the next dot. Text with no quoted part splits at its last dot,
    as it always did, so a quote inside an unquoted name stays a character of the name.
    """
    if not quoted(text):
        schema, _, table = text.rpartition(".")
        return (schema or None), table
    parts: list[str] = []
    index = 0
    while index <= len(text):
        if text.startswith('"', index):
            closing = index + 1
            current: list[str] = []
            while closing < len(text):
                if text[closing] == '"':
                    if text.startswith('""', closing):
                        current.append('"')
                        closing += 2
                        continue
                    break
                current.append(text[closing])
                closing += 1
            parts.append("".join(current))
            index = closing + 1
            if index < len(text) and text[index] == ".":
                index += 1
            elif index >= len(text):
                break
        else:
            end = text.find(".", index)
            end = len(text) if end < 0 else end
            parts.append(text[index:end])
            index = end + 1
            if end >= len(text):
                break
    if len(parts) == 1:
        return None, parts[0]
    return ".".join(parts[:-1]), parts[-1]


def quoted(text: str) -> bool:
    """Whether a part of ``source_table`` is written in double quotes (it starts the text or follows a dot)."""
    return text.startswith('"') or '."' in text


def quote_part(name: str) -> str:
    """A part as source_table writes it: quoted when it holds a dot or starts with a quote."""
    return '"' + name.replace('"', '""') + '"' if "." in name or name.startswith('"') else name


def join_upstream(schema: str | None, table: str) -> str:
    """The ``source_table`` text of an upstream (schema, table)."""
    return f"{quote_part(schema)}.{quote_part(table)}" if schema else quote_part(table)


def ambiguous(text: str) -> bool:
    """Whether an unquoted ``source_table`` has more than one dot (which one splits schema from table?)."""
    return not quoted(text) and text.count(".") > 1
