"""Select relations with the terms users type after a command (``conveyor run SELECTION``).

The syntax follows dbt so it is familiar:

- globs over ``schema.table`` (``sales.*``, ``*.dim_*``), a bare schema (``sales``), tags
  (``tag:daily``);
- ``+`` before or after a term for everything upstream or downstream of it, or with a depth:
  ``2+sales.daily`` (parents and grandparents), ``sales.orders+1`` (children only);
- ``@sales.orders``: the relation, everything downstream of it, and everything those need
  (what a rebuild of it needs to be complete);
- terms separated by spaces are a union; a comma inside a term intersects its parts
  (``tag:finance,marts``: relations tagged finance in schema marts);
- ``!term`` (or ``--exclude term``) removes what the term selects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from conveyor.errors import SelectionError, did_you_mean
from conveyor.graph.dag import Dag

__all__ = ["EXCLUDE", "Term", "parse_term", "select"]

EXCLUDE = "!"
"""The prefix of a term whose relations are removed from the selection (``--exclude`` adds it)."""

_NO_MATCH_HINT = 'Run "conveyor ls" to see all relations.'
_TERM = re.compile(
    r"^(?P<at>@)?(?:(?P<up_depth>\d+)?(?P<up>\+))?(?P<pattern>.*?)(?:(?P<down>\+)(?P<down_depth>\d+)?)?$"
)
_SYNTAX = (
    'Use a glob like "sales.*", a schema, or "tag:NAME"; "+" before or after (with an optional depth, '
    '"2+name", "name+1"), "@name", commas to intersect, "!term" to exclude.'
)


@dataclass(frozen=True)
class Term:
    """One parsed selection term (one part of a comma-separated intersection)."""

    text: str
    pattern: str
    upstream: bool = False
    downstream: bool = False
    up_depth: int | None = None
    """With ``upstream``: how many steps up (None: all the way)."""
    down_depth: int | None = None
    """With ``downstream``: how many steps down (None: all the way)."""
    at: bool = False
    """``@name``: downstream, and everything upstream of that."""

    @property
    def is_tag(self) -> bool:
        """True for ``tag:`` terms, which match tags rather than names."""
        return self.pattern.startswith("tag:")


def select(dag: Dag, terms: Sequence[str], *, schemas: Iterable[str] = ()) -> list[str]:
    """Return the relations selected by ``terms``, in execution order.

    Args:
        dag: the project's graph.
        terms: selection terms as typed; empty selects everything. Terms are a union, a
            comma inside one intersects its parts, and a term starting with ``!`` excludes.
        schemas: schema names to suggest in "did you mean" besides those of the
            relations, e.g. configured schemas that have no relation yet.

    Returns:
        Names of the selected relations in ``dag.order()``.

    Raises:
        SelectionError: for a malformed term, or a term that matches no relation.
    """
    included: list[tuple[str, list[Term]]] = []
    excluded: list[tuple[str, list[Term]]] = []
    for raw in terms:
        text = raw.strip()
        negative = text.startswith(EXCLUDE)
        body = text[len(EXCLUDE) :].strip() if negative else text
        parts = (text, [parse_term(piece) for piece in _split(body)])
        (excluded if negative else included).append(parts)
    if not included and not excluded:
        return dag.order()
    chosen: set[str] = set(dag.nodes) if not included else set()
    for text, pieces in included:
        chosen |= _intersection(dag, text, pieces, schemas)
    for text, pieces in excluded:
        chosen -= _intersection(dag, text, pieces, schemas)
    return dag.order(chosen)


def _intersection(dag: Dag, text: str, group: list[Term], schemas: Iterable[str]) -> set[str]:
    found = _expand(dag, group[0], schemas)
    for term in group[1:]:
        found &= _expand(dag, term, schemas)
    if not found:
        raise SelectionError(
            f'selection "{text}" matches no relation: no relation is in all of {", ".join(t.text for t in group)}.',
            hint="A comma intersects; separate terms with a space for a union. " + _NO_MATCH_HINT,
        )
    return found


def _split(term: str) -> list[str]:
    """Split a term on commas; an empty piece is a mistake worth reporting."""
    return [piece.strip() for piece in term.split(",")]


def parse_term(text: str) -> Term:
    """Parse one term such as ``+sales.orders+``, ``2+sales.daily``, ``@sales.orders`` or ``tag:daily``.

    Raises:
        SelectionError: when the term is empty or its ``+``, ``@`` or ``tag:`` is misused.
    """
    match = _TERM.match(text)
    problem = "it mixes @ with +" if match and match["at"] and (match["up"] or match["down"]) else None
    pattern = match["pattern"] if match else text
    problem = problem or _problem(pattern)
    if match is None or problem:
        raise SelectionError(f'malformed selection "{text}": {problem or "it cannot be read"}.', hint=_SYNTAX)
    return Term(
        text,
        pattern,
        upstream=bool(match["up"]),
        downstream=bool(match["down"]),
        up_depth=int(match["up_depth"]) if match["up_depth"] else None,
        down_depth=int(match["down_depth"]) if match["down_depth"] else None,
        at=bool(match["at"]),
    )


def _problem(pattern: str) -> str | None:
    if not pattern:
        return "the term is empty"
    if "+" in pattern or "@" in pattern:
        return '"+" may appear only once at the start and once at the end, "@" only at the start'
    if pattern.startswith(EXCLUDE):
        return '"!" (exclude) applies to a whole term, not to a part after a comma'
    if any(ch.isspace() for ch in pattern):
        return "a term cannot contain spaces"
    if pattern.startswith("tag:") and len(pattern) == len("tag:"):
        return '"tag:" needs a tag name'
    return None


def _expand(dag: Dag, term: Term, schemas: Iterable[str]) -> set[str]:
    """The relations a term matches, plus their ancestors or descendants if asked."""
    matched = _match(dag, term)
    if not matched:
        raise _no_match(dag, term, schemas)
    chosen = set(matched)
    for name in matched:
        if term.upstream:
            chosen |= dag.upstream(name, term.up_depth)
        if term.downstream or term.at:
            chosen |= dag.downstream(name, term.down_depth)
    if term.at:  # what the relations downstream need to be rebuilt complete
        for name in list(chosen):
            chosen |= dag.upstream(name)
    return chosen


def _match(dag: Dag, term: Term) -> list[str]:
    if term.is_tag:
        tag = term.pattern[len("tag:") :]
        return [n.name for n in dag.nodes.values() if any(fnmatchcase(t, tag) for t in n.tags)]
    if "." not in term.pattern:
        # a bare word is a schema: "sales" means "sales.*"
        return [name for name in dag.nodes if fnmatchcase(name.partition(".")[0], term.pattern)]
    return [name for name in dag.nodes if fnmatchcase(name, term.pattern)]


def _no_match(dag: Dag, term: Term, schemas: Iterable[str]) -> SelectionError:
    if term.is_tag:
        candidates = {f"tag:{tag}" for node in dag.nodes.values() for tag in node.tags}
    else:
        candidates = set(dag.nodes) | {name.partition(".")[0] for name in dag.nodes} | set(schemas)
    suggestion = did_you_mean(term.pattern, sorted(candidates))
    return SelectionError(f'selection "{term.text}" matches no relation.{suggestion}', hint=_NO_MATCH_HINT)
