"""A faster stand-in for spaCy's attribute ruler when the dependency parser is not run.

The packaged English pipeline maps fine-grained tags to parts of speech and morphology with
an ``attribute_ruler`` of ~180 Matcher patterns. spaCy's Matcher checks every pattern at
every token, which made it the second most expensive step of our preprocessing (more than
the tagger it serves). The patterns themselves are simple: one or two tokens constrained on
TAG, LOWER, DEP or IS_SPACE with exact values, IN, NOT_IN or REGEX. This module indexes
them by exact TAG and LOWER values so each token looks at only the few patterns that can
apply, and applies matches in the ruler's own order (later patterns win), which gives the
same tags, parts of speech, morphology and lemmas as the stock component (tested).

Without a parser every token's DEP is empty, so patterns that need a dependency label are
resolved once at load time instead of at every token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

SUPPORTED_KEYS = {"TAG", "LOWER", "DEP", "IS_SPACE"}


class UnsupportedPattern(ValueError):
    """A pattern uses a Matcher feature this index does not implement (the caller keeps spaCy's)."""


def _value_check(spec: Any) -> Callable[[Any], bool]:
    if not isinstance(spec, dict):
        return lambda value: value == spec
    if set(spec) == {"IN"}:
        allowed = set(spec["IN"])
        return lambda value: value in allowed
    if set(spec) == {"NOT_IN"}:
        banned = set(spec["NOT_IN"])
        return lambda value: value not in banned
    if set(spec) == {"REGEX"}:
        regex = re.compile(spec["REGEX"])
        return lambda value: regex.search(value) is not None
    raise UnsupportedPattern(f"operator {sorted(spec)}")


@dataclass(frozen=True)
class _Pattern:
    rule: int            # the attribute ruler's rule number: later rules win
    checks: tuple[tuple[tuple[str, Callable[[Any], bool]], ...], ...]  # per token: (key, check)
    index: int           # which token of the match receives the attributes

    def matches_at(self, values: dict[str, list], start: int) -> bool:
        if start + len(self.checks) > len(values["TAG"]):
            return False
        for offset, token_checks in enumerate(self.checks):
            for key, check in token_checks:
                if not check(values[key][start + offset]):
                    return False
        return True


def _compile(rule: int, pattern: list[dict], index: int) -> tuple[_Pattern | None, tuple[str, str] | None]:
    """A compiled pattern (None if it can never match without DEP labels) and its index key."""
    checks = []
    for token_spec in pattern:
        unknown = set(token_spec) - SUPPORTED_KEYS
        if unknown:
            raise UnsupportedPattern(f"keys {sorted(unknown)}")
        token_checks = []
        for key, spec in token_spec.items():
            check = _value_check(spec)
            if key == "DEP":
                if not check(""):
                    return None, None  # needs a dependency label the pipeline never sets
                continue
            token_checks.append((key, check))
        checks.append(tuple(token_checks))
    first = pattern[0]
    key = next(((k, first[k]) for k in ("LOWER", "TAG") if isinstance(first.get(k), str)), None)
    return _Pattern(rule, tuple(checks), index), key


class AttributeIndex:
    """Applies an attribute ruler's patterns through exact-value indexes."""

    def __init__(self, ruler: Any):
        from spacy.tokens._retokenize import set_token_attrs

        self._set_token_attrs = set_token_attrs
        self._attrs = list(ruler.attrs)  # normalised attribute dicts, one per rule
        self._by_key: dict[tuple[str, str], list[_Pattern]] = {}
        self._always: list[_Pattern] = []
        for rule, entry in enumerate(ruler.patterns):
            for pattern in entry["patterns"]:
                compiled, key = _compile(rule, pattern, entry.get("index", 0))
                if compiled is None:
                    continue
                if key is None:
                    self._always.append(compiled)
                else:
                    self._by_key.setdefault(key, []).append(compiled)

    def __call__(self, doc: Doc) -> Doc:
        values = {"TAG": [t.tag_ for t in doc], "LOWER": [t.lower_ for t in doc], "IS_SPACE": [t.is_space for t in doc]}
        by_key, always = self._by_key, self._always
        matches = []
        for start, (lower, tag) in enumerate(zip(values["LOWER"], values["TAG"])):
            for pattern in (*by_key.get(("LOWER", lower), ()), *by_key.get(("TAG", tag), ()), *always):
                if pattern.matches_at(values, start):
                    matches.append((pattern.rule, start, start + len(pattern.checks), pattern.index))
        matches.sort()
        for rule, start, end, index in matches:
            self._set_token_attrs(doc[start:end][index], self._attrs[rule])
        return doc


def attribute_index_for(nlp: Language) -> AttributeIndex | None:
    """An index equivalent to the pipeline's attribute ruler, or None when it cannot stand in."""
    if "attribute_ruler" not in nlp.pipe_names or "parser" in nlp.pipe_names:
        return None
    try:
        return AttributeIndex(nlp.get_pipe("attribute_ruler"))
    except UnsupportedPattern:
        return None
