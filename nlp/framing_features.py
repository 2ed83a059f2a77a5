"""Features for the framing and stance classifier, built from stored MiniLM vectors.

A post is represented by three things, all derived from the codebook and vectors already in
hand (nothing here calls the encoder):

* its *context vector*: the post's own embedding plus its parent's, weighted so a short reply
  ("exactly.") leans on what it answers while a long post speaks for itself;
* similarities of the context vector to *anchors*: the codebook's examples, includes and
  definition for each framing (and its counter-examples and excludes as negative anchors), and
  each stance label's definition and examples;
* *cue rates*: how often words from each framing's ``includes`` occur in the post's own text.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

import numpy as np

from nlp.codebook import Codebook

DIMENSIONS = 384
# Parent weight for a reply of n words: PARENT_WEIGHT / (1 + n / PARENT_HALF_WORDS).
PARENT_WEIGHT = 0.6
PARENT_HALF_WORDS = 20.0
CUE_SCALE = 3.0

_WORD = re.compile(r"[a-z][a-z\-']+")
_STOP = frozenset(
    """the a an and or of to in on for with as by is are was were be been it its this that their there
    they them his her he she we you our your me my not no but if so than then at from into about over
    under also only just even very more most such same other any each all can could would should will
    may might do does did done has have had what which who whom whose when where why how out up down
    off own too e.g etc whether""".split()
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def text_key(text: str) -> str:
    """Stable key of a text (used to find a codebook text among the anchors)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def cue_words(codebook: Codebook) -> dict[str, frozenset[str]]:
    """Per framing, the content words of its ``includes`` (stop words and short words dropped).

    Words shared with another framing's includes are kept: the classifier weighs the rates
    against each other (dropping shared words measured worse on held-out discussions)."""
    cues = {}
    for framing in codebook.framings:
        found: set[str] = set()
        for line in framing.includes:
            found |= {w.strip("'") for w in words(line) if w not in _STOP and len(w) > 2}
        cues[framing.key] = frozenset(found)
    return cues


def anchor_texts(codebook: Codebook) -> list[tuple[str, str]]:
    """(group, text) pairs: the texts whose vectors serve as anchors, grouped by role."""
    pairs: list[tuple[str, str]] = []
    for framing in codebook.framings:
        pairs += [(f"{framing.key}:pos", t) for t in framing.examples + framing.includes]
        pairs.append((f"{framing.key}:def", framing.definition))
        negatives = framing.counter_examples + framing.excludes
        pairs += [(f"{framing.key}:neg", t) for t in negatives]
    for label in codebook.stance_labels:
        table = codebook.stance_table(label)
        pairs += [(f"stance.{label}:pos", t) for t in table.examples + [table.definition]]
    return pairs


def context_weights(n_words: np.ndarray, has_parent: np.ndarray) -> np.ndarray:
    weights = PARENT_WEIGHT / (1.0 + n_words.astype(np.float32) / PARENT_HALF_WORDS)
    return np.where(has_parent, weights, 0.0).astype(np.float32)


def context_vectors(own: np.ndarray, parent: np.ndarray, has_parent: np.ndarray, n_words: np.ndarray) -> np.ndarray:
    """Unit vectors of own + w * parent (w = 0 for posts without a parent vector)."""
    w = context_weights(n_words, has_parent)[:, None]
    mixed = own.astype(np.float32) + w * parent.astype(np.float32)
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    return mixed / np.maximum(norms, 1e-12)


@dataclass
class FeatureSpace:
    """Everything needed to turn vectors and texts into the classifier's input matrix."""

    groups: list[str]
    anchor_group: np.ndarray        # (m,) int index into groups
    anchor_vectors: np.ndarray      # (m, 384) float32
    anchor_keys: list[str]          # text_key of each anchor (to leave a text out of its own anchors)
    framing_keys: list[str]
    cues: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, codebook: Codebook, vectors_for) -> "FeatureSpace":
        """``vectors_for(texts) -> (n, 384)`` supplies anchor vectors (cached, never re-encoded)."""
        pairs = anchor_texts(codebook)
        groups = sorted({g for g, _ in pairs}, key=[g for g, _ in pairs].index)
        vectors = np.asarray(vectors_for([t for _, t in pairs]), dtype=np.float32)
        return cls(
            groups=groups,
            anchor_group=np.array([groups.index(g) for g, _ in pairs], dtype=np.int32),
            anchor_vectors=vectors,
            anchor_keys=[text_key(t) for _, t in pairs],
            framing_keys=codebook.framing_keys,
            cues=cue_words(codebook),
        )

    @property
    def n_features(self) -> int:
        return DIMENSIONS + 2 * len(self.groups) + len(self.framing_keys)

    def cue_rates(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.framing_keys)), dtype=np.float32)
        cue_sets = [self.cues.get(k, frozenset()) for k in self.framing_keys]
        for i, text in enumerate(texts):
            tokens = [w.strip("'") for w in words(text)]
            if not tokens:
                continue
            scale = CUE_SCALE / math.sqrt(len(tokens))
            for j, cues in enumerate(cue_sets):
                if cues:
                    out[i, j] = sum(t in cues for t in tokens) * scale
        return out

    def transform(
        self,
        own: np.ndarray,
        parent: np.ndarray,
        has_parent: np.ndarray,
        texts: list[str],
        leave_out: list[str] | None = None,
    ) -> np.ndarray:
        """The input matrix (n, n_features). ``leave_out`` (text keys) hides an item's own text
        from its anchor similarities, so codebook examples used for training are not scored
        against themselves."""
        n_words = np.array([len(words(t)) for t in texts], dtype=np.float32)
        ctx = context_vectors(own, parent, has_parent, n_words)
        sims = ctx @ self.anchor_vectors.T  # (n, m)
        if leave_out is not None:
            index = {}
            for j, key in enumerate(self.anchor_keys):
                index.setdefault(key, []).append(j)
            for i, key in enumerate(leave_out):
                for j in index.get(key, ()):
                    sims[i, j] = -1.0
        parts = [ctx]
        anchor_feats = np.zeros((len(texts), 2 * len(self.groups)), dtype=np.float32)
        for g in range(len(self.groups)):
            block = sims[:, self.anchor_group == g]
            if block.shape[1] == 0:
                continue
            top = np.sort(block, axis=1)
            anchor_feats[:, 2 * g] = top[:, -1]
            anchor_feats[:, 2 * g + 1] = top[:, -2:].mean(axis=1) if block.shape[1] > 1 else top[:, -1]
        parts.append(anchor_feats)
        parts.append(self.cue_rates(texts))
        return np.concatenate(parts, axis=1).astype(np.float32)
