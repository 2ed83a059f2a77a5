"""Topics that keep their ids from one nightly run to the next (BERTopic on stored embeddings).

Fit
    BERTopic on the post embeddings already stored in the warehouse (posts are never encoded
    again): UMAP with a fixed ``random_state`` -> HDBSCAN (for small corpora where HDBSCAN finds
    fewer than two clusters: Ward clustering with k picked by silhouette) -> c-TF-IDF with English
    stop words -> keywords re-ranked by closeness to the topic centroid (KeyBERTInspired, with the
    topic vector taken from the stored post embeddings; only candidate words are encoded, with the
    packaged MiniLM). Labels are the top keywords; no LLM and no network.

Persist
    ``BERTopic.save(serialization="safetensors", save_ctfidf=True, save_embedding_model=False)``
    into a versioned folder ``vNNNN/`` under the topics folder next to the warehouse, plus
    ``framewatch.json`` (labels, per-topic assignment floors, fit metadata). The warehouse records
    which version is current, so a failed run never leaves a half-written "current" model.

Nightly
    Posts without a topic are assigned to the nearest topic centroid (cosine similarity) if the
    similarity reaches that topic's floor (the similarity of the topic's loosest member at fit, minus
    a small margin), else they stay outliers (-1) until the next refit. This reads only the
    centroids (safetensors + JSON): no UMAP, no numba, cost grows with the new posts only.

Refit
    When the corpus grew by ``refit_growth`` (25 %) since the last fit, or on request: a new model
    is fitted on all posts and merged into the current one with ``BERTopic.merge_models([current,
    new])``. Existing topics keep their id, centroid, keywords and label; topics of the new model
    that match none of them (cosine < ``merge_similarity``) get new ids. Posts keep their topic,
    except that a newly created topic claims the posts that define it, and outliers get the refit's
    topic.

Everything is deterministic for the same posts and parameters (fixed seeds, sorted inputs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

OUTLIER = -1
META_FILE = "framewatch.json"
WEIGHTS_FILE = "topic_embeddings.safetensors"  # BERTopic's safetensors file name
TOPICS_FILE = "topics.json"
FORMAT = 1

WordEncoder = Callable[[list[str]], np.ndarray]


# --------------------------------------------------------------------------------------------
# Environment: numba's JIT cache lives in the user cache dir, never inside the repository.


def cache_dir() -> Path:
    """``$FRAMEWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/framewatch``, else ``~/.cache/framewatch``."""
    explicit = os.environ.get("FRAMEWATCH_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "framewatch"


def configure_numba_cache() -> Path:
    """Point numba's on-disk cache (UMAP/pynndescent JIT code) at the cache dir; an explicit
    ``NUMBA_CACHE_DIR`` wins. Saves 10-50 s of compilation on every cold start."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        target = cache_dir() / "numba"
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError:
            return target  # read-only home: numba simply compiles without a cache
        os.environ["NUMBA_CACHE_DIR"] = str(target)
        if "numba" in sys.modules:  # imported earlier by someone else: make it re-read the env
            from numba.core import config as numba_config

            numba_config.reload_config()
    _quiet_expected_bertopic_warnings()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return Path(os.environ["NUMBA_CACHE_DIR"])


class _DropExpected(logging.Filter):
    """BERTopic warns on every save/load that no embedding model is attached; framewatch never
    attaches one on purpose (vectors come from the warehouse), so those lines are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "embedding model" not in record.getMessage()


def _quiet_expected_bertopic_warnings() -> None:
    target = logging.getLogger("BERTopic")
    if not any(isinstance(f, _DropExpected) for f in target.filters):
        target.addFilter(_DropExpected())


configure_numba_cache()  # before anything imports numba (umap, pynndescent, hdbscan)


# --------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class TopicParams:
    """Knobs of the topic model; ``None`` means "derived from the corpus size"."""

    seed: int = 42
    min_cluster_size: int | None = None  # HDBSCAN; None: clamp(round(sqrt(n) / 2), 5, 50)
    n_neighbors: int | None = None  # UMAP; None: clamp(n // 10, 5, 15)
    n_components: int = 5
    top_n_words: int = 10  # keywords kept per topic
    candidate_words: int = 30  # c-TF-IDF candidates re-ranked by closeness to the centroid
    label_words: int = 3
    merge_similarity: float = 0.7  # BERTopic.merge_models min_similarity between topic centroids
    refit_growth: float = 0.25  # refit once the corpus is this much larger than at the last fit
    floor_quantile: float = 0.0  # per-topic assignment floor: this quantile of the members'
    floor_margin: float = 0.02  # similarity to the centroid (0.0: the loosest member), minus this
    min_silhouette: float = 0.25  # small-corpus fallback: below this there is no real structure
    extra_stop_words: tuple[str, ...] = ()

    def cluster_size(self, n: int) -> int:
        if self.min_cluster_size:
            return self.min_cluster_size
        return int(min(50, max(5, round(math.sqrt(n) / 2))))

    def neighbours(self, n: int) -> int:
        value = self.n_neighbors or int(min(15, max(5, n // 10)))
        return max(2, min(value, n - 1))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra_stop_words"] = list(self.extra_stop_words)
        return data


# Web and chat filler on top of scikit-learn's English list (tokens are lower-cased, punctuation
# already stripped, so "don't" arrives as "dont").
EXTRA_STOP_WORDS = frozenset(
    """http https www com org net html amp rt via lol yeah yes ok okay oh gonna wanna im ive id
    youre theyre thats dont doesnt didnt isnt arent wasnt werent cant couldnt wouldnt shouldnt wont
    ll ve re just like really actually think thing things know say said got get getting going
    make makes way lot lots pretty quite maybe probably sure""".split()
)

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@[\w.-]+(?:@[\w.-]+)?")
_CONTRACTION = re.compile(r"(?i)(?<=\w)['’](s|t|re|ve|ll|d|m)\b")


def keyword_text(text: str | None) -> str:
    """Text as the keyword extractor sees it: no URLs, no @handles, no possessive/contraction tails
    (BERTopic keeps only ASCII letters and digits afterwards)."""
    text = _URL.sub(" ", text or "")
    text = _MENTION.sub(" ", text)
    text = _CONTRACTION.sub(lambda m: "t" if m.group(1).lower() == "t" else "", text)
    return " ".join(text.split())


def make_label(keywords: Sequence[str], n: int = 3, generic: frozenset[str] = frozenset()) -> str:
    """Up to ``n`` keywords that share no word with each other, skipping keywords made only of
    ``generic`` words (words that describe most topics, e.g. "social credit")."""
    chosen: list[str] = []
    used: set[str] = set()
    for phrase in keywords:
        tokens = set(phrase.split())
        if not tokens or tokens & used or tokens <= generic:
            continue
        chosen.append(phrase)
        used |= tokens
        if len(chosen) == n:
            break
    if not chosen:  # everything generic: better a generic label than none
        chosen = [k for k in keywords if k][:n]
    return ", ".join(chosen) if chosen else "(no keywords)"


def generic_words(keyword_lists: Sequence[Sequence[str]]) -> frozenset[str]:
    """Words found in the keywords of more than half of the topics (only with three or more)."""
    if len(keyword_lists) < 3:
        return frozenset()
    counts: dict[str, int] = {}
    for keywords in keyword_lists:
        for word in {w for phrase in keywords for w in phrase.split()}:
            counts[word] = counts.get(word, 0) + 1
    return frozenset(w for w, c in counts.items() if c > len(keyword_lists) / 2)


def as_unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


# --------------------------------------------------------------------------------------------
# Clustering (a scikit-learn style model BERTopic accepts as ``hdbscan_model``)


class AdaptiveClusterer:
    """HDBSCAN on the UMAP output; if it finds fewer than two clusters in a corpus big enough for
    two, Ward clustering with k in 2..10 (clusters of at least half ``min_cluster_size``) chosen by
    silhouette, kept only if the silhouette reaches ``min_silhouette``. Deterministic: neither step
    has randomness."""

    def __init__(self, min_cluster_size: int, max_k: int = 10, min_silhouette: float = 0.25):
        self.min_cluster_size = min_cluster_size
        self.max_k = max_k
        self.min_silhouette = min_silhouette
        self.method = "hdbscan"
        self.labels_: np.ndarray | None = None

    def _hdbscan(self, X: np.ndarray) -> np.ndarray:
        try:
            from hdbscan import HDBSCAN

            model = HDBSCAN(min_cluster_size=self.min_cluster_size, metric="euclidean",
                            cluster_selection_method="eom", core_dist_n_jobs=1)
        except ImportError:  # scikit-learn's port gives the same clusters
            from sklearn.cluster import HDBSCAN

            model = HDBSCAN(min_cluster_size=self.min_cluster_size, metric="euclidean",
                            cluster_selection_method="eom")
        return np.asarray(model.fit(X).labels_, dtype=int)

    def fit(self, X: np.ndarray, y: Any = None) -> "AdaptiveClusterer":
        X = np.asarray(X, dtype=np.float64)
        labels = self._hdbscan(X)
        found = len(set(labels.tolist()) - {OUTLIER})
        self.method = f"hdbscan(min_cluster_size={self.min_cluster_size})"
        if found < 2 and len(X) >= 2 * self.min_cluster_size:
            fallback = self._ward(X)
            if fallback is not None:
                labels, k, score = fallback
                self.method = f"ward(k={k}, silhouette={score:.2f})"
        self.labels_ = labels
        return self

    def _ward(self, X: np.ndarray) -> tuple[np.ndarray, int, float] | None:
        from sklearn.cluster import AgglomerativeClustering
        from sklearn.metrics import silhouette_score

        smallest = max(2, self.min_cluster_size // 2)  # a cluster of one or two posts is not a topic
        best: tuple[np.ndarray, int, float] | None = None
        for k in range(2, min(self.max_k, len(X) // smallest) + 1):
            labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(X)
            if np.bincount(labels).min() < smallest:
                continue
            score = float(silhouette_score(X, labels))
            if best is None or score > best[2] + 1e-9:
                best = (labels.astype(int), k, score)
        if best is None or best[2] < self.min_silhouette:
            return None
        return best

    def predict(self, X: np.ndarray) -> np.ndarray:  # BERTopic calls this only via transform
        raise NotImplementedError("framewatch assigns new posts by nearest topic centroid")


# --------------------------------------------------------------------------------------------
# Keyword representation (KeyBERTInspired with the topic vector from stored embeddings)


@lru_cache(maxsize=1)
def _centroid_keybert_class() -> type:
    from bertopic.representation import KeyBERTInspired
    from sklearn.metrics.pairwise import cosine_similarity

    class CentroidKeyBERT(KeyBERTInspired):
        """KeyBERTInspired whose topic vector is the mean of the topic's stored post embeddings.

        BERTopic 0.17.4's KeyBERTInspired indexes precomputed embeddings by position in its
        representative-document list instead of by document id, and would otherwise re-encode the
        representative posts; here only the candidate words are encoded. The plain c-TF-IDF
        keywords are kept as the "c-TF-IDF" aspect.
        """

        def __init__(self, encode_words: WordEncoder, top_n_words: int, nr_candidate_words: int):
            super().__init__(top_n_words=top_n_words, nr_candidate_words=nr_candidate_words)
            self.encode_words = encode_words

        def extract_topics(self, topic_model, documents, c_tf_idf, topics, embeddings=None):
            if embeddings is None:
                raise ValueError("CentroidKeyBERT needs the stored embeddings")
            labels = sorted(int(t) for t in topics)
            candidates = {t: [w for w, _ in topics[t][: self.nr_candidate_words] if w] for t in labels}
            topic_model.topic_aspects_["c-TF-IDF"] = {t: list(topics[t][: self.top_n_words]) for t in labels}
            ids = documents["Topic"].to_numpy()
            rows = documents["ID"].to_numpy().astype(int)
            centroids = np.stack([np.asarray(embeddings)[rows[ids == t]].mean(axis=0) for t in labels])
            vocab = sorted({w for words in candidates.values() for w in words})
            if not vocab:
                return {t: [("", 1e-05)] for t in labels}
            sims = cosine_similarity(centroids, self.encode_words(vocab))
            where = {w: i for i, w in enumerate(vocab)}
            updated = {}
            for row, topic in enumerate(labels):
                words = candidates[topic]
                if not words:
                    updated[topic] = [("", 1e-05)]
                    continue
                scores = [(float(sims[row, where[w]]), -rank, w) for rank, w in enumerate(words)]
                ranked = sorted(scores, reverse=True)[: self.top_n_words]
                updated[topic] = [(w, s) for s, _, w in ranked]
            return updated

    return CentroidKeyBERT


_WORD_VECTORS: dict[str, np.ndarray] = {}


def default_word_encoder(words: list[str]) -> np.ndarray:
    """Candidate words through the packaged MiniLM, remembered for the life of the process
    (refits and repeated fits see mostly the same words)."""
    from nlp.embed import encode

    missing = sorted({w for w in words if w not in _WORD_VECTORS})
    if missing:
        # fp32: the missing words differ from run to run, and bf16 vectors shift with batch make-up
        for word, vector in zip(missing, encode(missing, precision="fp32")):
            _WORD_VECTORS[word] = vector
    return np.stack([_WORD_VECTORS[w] for w in words]) if words else np.zeros((0, 384), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Fitting and merging


class TooFewPosts(Exception):
    pass


@dataclass
class FitOutcome:
    model: Any  # bertopic.BERTopic, normalised (see _normalise)
    labels: np.ndarray  # per input post: topic id in ``model`` (-1: outlier)
    clusterer: str


def _vectorizer(params: TopicParams):
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    stop = sorted(ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS | {w.lower() for w in params.extra_stop_words})
    return CountVectorizer(stop_words=stop, ngram_range=(1, 2), token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")


def fit_model(texts: Sequence[str], embeddings: np.ndarray, params: TopicParams = TopicParams(),
              encode_words: WordEncoder | None = None) -> FitOutcome:
    """Fit BERTopic on stored embeddings. Raises TooFewPosts when no topic can be found."""
    configure_numba_cache()
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer
    from umap import UMAP

    n = len(texts)
    if n != len(embeddings):
        raise ValueError(f"{n} texts but {len(embeddings)} embeddings")
    if n < 10:
        raise TooFewPosts(f"too few posts to fit topics ({n})")
    clusterer = AdaptiveClusterer(params.cluster_size(n), min_silhouette=params.min_silhouette)
    model = BERTopic(
        embedding_model=None,  # embeddings come from the warehouse
        umap_model=UMAP(n_neighbors=params.neighbours(n), n_components=min(params.n_components, n - 2),
                        min_dist=0.0, metric="cosine", random_state=params.seed, n_jobs=1),
        hdbscan_model=clusterer,
        vectorizer_model=_vectorizer(params),
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
        representation_model=_centroid_keybert_class()(
            encode_words or default_word_encoder, params.top_n_words, params.candidate_words),
        top_n_words=params.top_n_words,
        calculate_probabilities=False,
        language="english",
    )
    docs = [keyword_text(t) for t in texts]
    vectors = np.asarray(embeddings, dtype=np.float64)
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings contain NaN or infinite values")
    labels, _ = model.fit_transform(docs, embeddings=vectors)
    labels = np.asarray(labels, dtype=int)
    if not (labels != OUTLIER).any():
        raise TooFewPosts(f"no topics found among {n} posts")
    _normalise(model)
    return FitOutcome(model=model, labels=labels, clusterer=clusterer.method)


def _normalise(model) -> None:
    """Give every model an outlier slot whose centroid is zero.

    ``merge_models`` matches topics by centroid similarity and indexes rows by "_outliers"; the
    outlier centroid (the mean of unrelated posts) would otherwise absorb real topics, and a model
    without outliers merged with one that has them would shift every row by one.
    """
    sizes = dict(model.topic_sizes_)
    vectors = np.asarray(model.topic_embeddings_, dtype=np.float64)
    if OUTLIER in sizes:
        vectors[0] = 0.0
    else:
        vectors = np.vstack([np.zeros((1, vectors.shape[1])), vectors])
        sizes[OUTLIER] = 0
        model.topic_representations_[OUTLIER] = [("", 1e-05)]
        for aspect in model.topic_aspects_.values():
            aspect[OUTLIER] = [("", 1e-05)]
    model.topic_embeddings_ = vectors
    model.topic_sizes_ = dict(sorted(sizes.items()))


def _record_sizes(model, assigned: np.ndarray) -> None:
    """Topic sizes as stored in the warehouse (the outlier key stays, see _normalise)."""
    counts = {OUTLIER: 0, **{t: 0 for t in topic_ids_of(model)}}
    for topic, count in zip(*np.unique(assigned, return_counts=True)):
        counts[int(topic)] = int(count)
    model.topic_sizes_ = counts


def topic_ids_of(model) -> list[int]:
    return sorted(int(t) for t in model.topic_representations_ if int(t) != OUTLIER)


def keywords_of(model, topic_id: int) -> list[str]:
    return [w for w, _ in model.topic_representations_[topic_id] if w]


def merge_into(current, outcome: FitOutcome, min_similarity: float) -> tuple[Any, np.ndarray, list[int]]:
    """Merge a refit into the current model with ``BERTopic.merge_models``.

    Returns the merged model, the refit's post labels in merged ids, and the ids of new topics.
    """
    from bertopic import BERTopic

    old_ids = set(topic_ids_of(current))
    # merge_models numbers new topics from max(current.topics_); make sure every id is in there.
    missing = sorted(old_ids - set(int(t) for t in current.topics_))
    current.topics_ = [int(t) for t in current.topics_] + missing
    offset = len(current.topics_)
    merged = BERTopic.merge_models([current, outcome.model], min_similarity=min_similarity)
    mapped = np.asarray(merged.topics_[offset:], dtype=int)
    if len(mapped) != len(outcome.labels):
        raise RuntimeError("merge_models returned an unexpected topic list")
    new_ids = sorted(set(topic_ids_of(merged)) - old_ids)
    merged.topics_ = mapped.tolist()
    vectors = np.asarray(merged.topic_embeddings_, dtype=np.float64)
    if len(vectors) != len(topic_ids_of(merged)) + 1:
        raise RuntimeError("merged model: topic embeddings and topic ids disagree")
    merged.topic_embeddings_ = vectors
    merged.topic_sizes_ = {OUTLIER: 0, **{t: 0 for t in topic_ids_of(merged)}}
    return merged, mapped, new_ids


# --------------------------------------------------------------------------------------------
# The light, persisted view used for nightly assignment


@dataclass
class TopicSet:
    """What nightly assignment needs: ids, centroids, floors, labels and keywords."""

    version: int
    topic_ids: np.ndarray  # real topics only (no -1), ascending
    centroids: np.ndarray  # (k, dim), unit length
    floors: np.ndarray  # (k,), minimum cosine similarity to join the topic
    labels: dict[int, str]
    keywords: dict[int, list[str]]
    created: dict[int, int]  # topic id -> model version that created it
    meta: dict[str, Any] = field(default_factory=dict)

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        return as_unit(embeddings) @ self.centroids.T

    def assign(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid if its similarity reaches the topic's floor, else -1; returns
        (topic ids, similarity to the nearest centroid clipped to [0, 1])."""
        if len(embeddings) == 0 or len(self.topic_ids) == 0:
            return np.full(len(embeddings), OUTLIER, dtype=int), np.zeros(len(embeddings))
        sims = self.similarities(embeddings)
        best = sims.argmax(axis=1)
        score = sims[np.arange(len(best)), best]
        topics = np.where(score >= self.floors[best], self.topic_ids[best], OUTLIER)
        return topics.astype(int), np.clip(score, 0.0, 1.0).astype(np.float64)

    def similarity_to(self, embeddings: np.ndarray, topics: np.ndarray) -> np.ndarray:
        """Cosine similarity of each post to the centroid of its topic (0 for outliers)."""
        out = np.zeros(len(topics), dtype=np.float64)
        if len(topics) == 0 or len(self.topic_ids) == 0:
            return out
        index = {int(t): i for i, t in enumerate(self.topic_ids)}
        known = np.array([int(t) in index for t in topics])
        if known.any():
            rows = np.array([index[int(t)] for t in topics[known]])
            unit = as_unit(np.asarray(embeddings)[known])
            out[known] = np.einsum("ij,ij->i", unit, self.centroids[rows])
        return np.clip(out, 0.0, 1.0)

    def topic_rows(self) -> list[dict[str, Any]]:
        return [
            {"topic_id": int(t), "label": self.labels[int(t)], "keywords": self.keywords[int(t)],
             "model_version": self.created[int(t)]}
            for t in self.topic_ids
        ]


def _floors(unit_embeddings: np.ndarray, labels: np.ndarray, centroids: np.ndarray, topic_ids: np.ndarray,
            params: TopicParams) -> np.ndarray:
    floors = np.zeros(len(topic_ids))
    for i, topic in enumerate(topic_ids):
        members = unit_embeddings[labels == topic]
        if len(members) == 0:
            floors[i] = 1.0  # a topic nobody belongs to takes no new posts until the next refit
            continue
        sims = members @ centroids[i]
        floors[i] = float(np.quantile(sims, params.floor_quantile)) - params.floor_margin
    return np.clip(floors, 0.0, 1.0)


def topic_set_from_model(model, version: int, floors: dict[int, float], labels: dict[int, str],
                         created: dict[int, int], meta: dict[str, Any]) -> TopicSet:
    ids = np.array(topic_ids_of(model), dtype=int)
    vectors = np.asarray(model.topic_embeddings_)[1:]  # row 0 is the (zero) outlier slot
    return TopicSet(
        version=version,
        topic_ids=ids,
        centroids=as_unit(vectors),
        floors=np.array([floors[int(t)] for t in ids], dtype=np.float64),
        labels={int(t): labels[int(t)] for t in ids},
        keywords={int(t): keywords_of(model, int(t)) for t in ids},
        created={int(t): created[int(t)] for t in ids},
        meta=meta,
    )


# --------------------------------------------------------------------------------------------
# The whole update, independent of the warehouse


@dataclass
class Update:
    """Result of one run: which posts got which topic, and the topic set to store."""

    action: str  # fit | refit | assign
    topics: TopicSet
    post_ids: list[str]
    assigned: np.ndarray  # topic id per post (-1: outlier)
    probability: np.ndarray
    model: Any = None  # the BERTopic model to save (fit/refit only)
    new_topic_ids: list[int] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def fit_new(post_ids: Sequence[str], texts: Sequence[str], embeddings: np.ndarray, version: int,
            params: TopicParams = TopicParams(), encode_words: WordEncoder | None = None,
            meta: dict[str, Any] | None = None) -> Update:
    """First fit (or a fresh start): every post gets the fitted topic, outliers the nearest topic
    whose floor they reach."""
    outcome = fit_model(texts, embeddings, params, encode_words)
    model = outcome.model
    ids = np.array(topic_ids_of(model), dtype=int)
    unit = as_unit(embeddings)
    centroids = as_unit(np.asarray(model.topic_embeddings_)[1:])
    floors = dict(zip(ids.tolist(), _floors(unit, outcome.labels, centroids, ids, params).tolist()))
    keywords = [keywords_of(model, int(t)) for t in ids]
    generic = generic_words(keywords)
    labels = {int(t): make_label(k, params.label_words, generic) for t, k in zip(ids, keywords)}
    created = {int(t): version for t in ids}
    info = {**(meta or {}), "kind": "fit", "clusterer": outcome.clusterer, "n_posts": len(post_ids)}
    topics = topic_set_from_model(model, version, floors, labels, created, info)
    assigned = outcome.labels.copy()
    rescue = assigned == OUTLIER
    if rescue.any():
        nearest, _ = topics.assign(unit[rescue])
        assigned[rescue] = nearest
    probability = topics.similarity_to(unit, assigned)
    _record_sizes(model, assigned)
    return Update("fit", topics, list(post_ids), assigned, probability, model=model,
                  new_topic_ids=ids.tolist(),
                  stats={"clusterer": outcome.clusterer, "fit_outliers": int(rescue.sum()),
                         "outliers_rescued": int((rescue & (assigned != OUTLIER)).sum())})


def refit_merge(current_model, current: TopicSet, post_ids: Sequence[str], texts: Sequence[str],
                embeddings: np.ndarray, previous: Sequence[int | None], version: int,
                params: TopicParams = TopicParams(), encode_words: WordEncoder | None = None,
                meta: dict[str, Any] | None = None) -> Update:
    """Fit on all posts and merge into ``current_model``; ``previous`` is each post's stored topic
    (None: never assigned)."""
    outcome = fit_model(texts, embeddings, params, encode_words)
    merged, mapped, new_ids = merge_into(current_model, outcome, params.merge_similarity)
    ids = np.array(topic_ids_of(merged), dtype=int)
    unit = as_unit(embeddings)
    centroids = as_unit(np.asarray(merged.topic_embeddings_)[1:])
    new_set = set(new_ids)

    prev = np.array([OUTLIER if p is None else int(p) for p in previous], dtype=int)
    had_topic = np.array([p is not None and int(p) != OUTLIER for p in previous], dtype=bool)
    claimed = np.isin(mapped, list(new_set)) if new_set else np.zeros(len(mapped), dtype=bool)
    assigned = np.where(claimed, mapped, np.where(had_topic, prev, mapped))

    # Floors: existing topics keep theirs; new topics get one from the posts they claimed.
    floors = {int(t): float(f) for t, f in zip(current.topic_ids, current.floors)}
    computed = _floors(unit, assigned, centroids, ids, params)
    for t, f in zip(ids.tolist(), computed.tolist()):
        floors.setdefault(int(t), f)
    keywords = {int(t): keywords_of(merged, int(t)) for t in ids}
    generic = generic_words(list(keywords.values()))
    labels = dict(current.labels)
    for t in new_ids:
        labels[t] = make_label(keywords[t], params.label_words, generic)
    created = dict(current.created)
    for t in new_ids:
        created[t] = version
    info = {**(meta or {}), "kind": "refit", "clusterer": outcome.clusterer, "n_posts": len(post_ids)}
    topics = topic_set_from_model(merged, version, floors, labels, created, info)

    rescue = assigned == OUTLIER
    if rescue.any():
        nearest, _ = topics.assign(unit[rescue])
        assigned[rescue] = nearest
    probability = topics.similarity_to(unit, assigned)
    _record_sizes(merged, assigned)
    moved = had_topic & (assigned != prev)
    return Update("refit", topics, list(post_ids), assigned, probability, model=merged, new_topic_ids=new_ids,
                  stats={"clusterer": outcome.clusterer, "moved_to_new_topics": int(moved.sum()),
                         "refit_disagreements": int((had_topic & ~claimed & (mapped != prev)).sum())})


def assign_new(current: TopicSet, post_ids: Sequence[str], embeddings: np.ndarray) -> Update:
    """Nightly: nearest centroid for posts without a topic."""
    assigned, probability = current.assign(np.asarray(embeddings))
    probability = np.where(assigned == OUTLIER, 0.0, probability)
    return Update("assign", current, list(post_ids), assigned, probability)


def needs_refit(n_posts: int, n_at_last_fit: int, growth: float) -> bool:
    return n_posts >= math.ceil(n_at_last_fit * (1.0 + growth))


# --------------------------------------------------------------------------------------------
# Storage: versioned model folders next to the warehouse


class ModelStore:
    """``<folder>/vNNNN/``: a BERTopic safetensors save plus ``framewatch.json``."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    @staticmethod
    def name(version: int) -> str:
        return f"v{version:04d}"

    def path(self, version: int) -> Path:
        return self.folder / self.name(version)

    def exists(self, version: int) -> bool:
        path = self.path(version)
        return (path / META_FILE).is_file() and (path / WEIGHTS_FILE).is_file()

    def save(self, update: Update) -> Path:
        """Write the model of a fit/refit; returns its folder. Replaces a leftover of a failed run."""
        configure_numba_cache()
        if update.model is None:
            raise ValueError("nothing to save: this update has no model")
        version = update.topics.version
        target = self.path(version)
        scratch = self.folder / f".{self.name(version)}.partial"
        for leftover in (scratch, target):
            if leftover.exists():
                shutil.rmtree(leftover)
        self.folder.mkdir(parents=True, exist_ok=True)
        model = update.model
        model.save(str(scratch), serialization="safetensors", save_embedding_model=False,
                   save_ctfidf=model.c_tf_idf_ is not None)
        topics = update.topics
        meta = {
            "format": FORMAT,
            "version": version,
            "saved_at": datetime.now(timezone.utc).isoformat(),
            **topics.meta,
            "topics": {
                str(int(t)): {"label": topics.labels[int(t)], "floor": float(f), "created": topics.created[int(t)]}
                for t, f in zip(topics.topic_ids, topics.floors)
            },
        }
        (scratch / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(scratch, target)
        return target

    def load(self, version: int) -> TopicSet:
        """The centroids, floors and keywords of a saved model, without importing BERTopic."""
        from safetensors.numpy import load_file

        path = self.path(version)
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        saved = json.loads((path / TOPICS_FILE).read_text(encoding="utf-8"))
        vectors = load_file(str(path / WEIGHTS_FILE))["topic_embeddings"]
        all_ids = sorted(int(t) for t in saved["topic_representations"])
        if all_ids[0] != OUTLIER or len(all_ids) != len(vectors):
            raise ValueError(f"{path}: topic embeddings do not match the topic ids")
        ids = np.array(all_ids[1:], dtype=int)
        info = meta["topics"]
        return TopicSet(
            version=version,
            topic_ids=ids,
            centroids=as_unit(vectors[1:]),
            floors=np.array([info[str(t)]["floor"] for t in ids], dtype=np.float64),
            labels={int(t): info[str(t)]["label"] for t in ids},
            keywords={int(t): [w for w, _ in saved["topic_representations"][str(t)] if w] for t in ids},
            created={int(t): int(info[str(t)]["created"]) for t in ids},
            meta={k: v for k, v in meta.items() if k != "topics"},
        )

    def load_model(self, version: int):
        """The full BERTopic model (for merging)."""
        configure_numba_cache()
        from bertopic import BERTopic

        model = BERTopic.load(str(self.path(version)))
        model.topic_embeddings_ = np.asarray(model.topic_embeddings_, dtype=np.float64)
        return model

    def prune(self, keep: set[int]) -> list[str]:
        """Delete version folders not in ``keep`` (and leftovers of failed saves)."""
        removed = []
        if not self.folder.is_dir():
            return removed
        for entry in sorted(self.folder.iterdir()):
            match = re.fullmatch(r"v(\d{4,})", entry.name)
            if (match and int(match.group(1)) not in keep) or entry.name.endswith(".partial"):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed
