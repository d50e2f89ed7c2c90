"""Select relations with the terms users type after ``--select``.

The syntax follows dbt and Arthur so it is familiar: globs over ``schema.table``
(``sales.*``, ``*.dim_*``), a bare schema (``sales``), tags (``tag:daily``), and
``+`` before or after a term to add everything upstream or downstream of it.
Terms are a union; a comma inside a term separates terms too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from conveyor.errors import SelectionError, did_you_mean
from conveyor.graph.dag import Dag

__all__ = ["Term", "parse_term", "select"]

_NO_MATCH_HINT = 'Run "conveyor ls" to see all relations.'


@dataclass(frozen=True)
class Term:
    """One parsed selection term."""

    text: str
    pattern: str
    upstream: bool = False
    downstream: bool = False

    @property
    def is_tag(self) -> bool:
        """True for ``tag:`` terms, which match tags rather than names."""
        return self.pattern.startswith("tag:")


def select(dag: Dag, terms: Sequence[str], *, schemas: Iterable[str] = ()) -> list[str]:
    """Return the relations selected by ``terms``, in execution order.

    Args:
        dag: the project's graph.
        terms: selection terms as typed; empty selects everything.
        schemas: schema names to suggest in "did you mean" besides those of the
            relations, e.g. configured schemas that have no relation yet.

    Returns:
        Names of the selected relations in ``dag.order()``.

    Raises:
        SelectionError: for a malformed term, or a term that matches no relation.
    """
    parsed = [parse_term(piece) for term in terms for piece in _split(term)]
    if not parsed:
        return dag.order()
    chosen: set[str] = set()
    for term in parsed:
        chosen |= _expand(dag, term, schemas)
    return dag.order(chosen)


def _split(term: str) -> list[str]:
    """Split a term on commas; an empty piece is a mistake worth reporting."""
    return [piece.strip() for piece in term.split(",")]


def parse_term(text: str) -> Term:
    """Parse one term such as ``+sales.orders+`` or ``tag:daily``.

    Raises:
        SelectionError: when the term is empty or its ``+`` or ``tag:`` is misused.
    """
    pattern = text[1:] if text.startswith("+") else text
    pattern = pattern[:-1] if pattern.endswith("+") else pattern
    problem = _problem(pattern)
    if problem:
        raise SelectionError(
            f'malformed selection "{text}": {problem}.',
            hint='Use a glob like "sales.*", a schema, or "tag:NAME", optionally with "+" before or after.',
        )
    return Term(text, pattern, upstream=text.startswith("+"), downstream=text.endswith("+"))


def _problem(pattern: str) -> str | None:
    if not pattern:
        return "the term is empty"
    if "+" in pattern:
        return '"+" may appear only once at the start and once at the end'
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
            chosen |= dag.upstream(name)
        if term.downstream:
            chosen |= dag.downstream(name)
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
