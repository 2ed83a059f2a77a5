"""The framing and stance classifier: logistic regressions over stored MiniLM vectors and
word/character n-grams, averaged.

Training data is whatever the project itself holds: the labelled corpus files named in the
config (posts joined to the corpus, or self-contained lines with the text inline such as the
written training set), the codebook's examples and counter-examples, and labels analysts
imported into the warehouse. A model's version is a hash of that data, of this code and of the
encoder, so the same labels always give the same model (newton-cg, no randomness) and a new label
gives a new one. Fitted models are cached outside the repository (``FRAMEWATCH_CACHE_DIR`` or
the user cache directory), so a run only trains when its training data changed.

Each framing gets two binary models with balanced class weights, one on the embedding features
(context vector, anchor similarities, cue rates; see ``framing_features``) and one on TF-IDF
word and character n-grams of the post's own text; its score is the mean of their
probabilities. Stance is the same pair of multinomial models. Replies are read with their
parent: the embedding half through the context vector, the n-gram half by mixing in its reading
of the parent text with the same weight. A framing's threshold is chosen on grouped
out-of-fold scores once it has enough labelled positives across enough threads, else 0.5.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import joblib
import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlp.codebook import Codebook
from nlp.framing_features import DIMENSIONS, FeatureSpace, context_weights, text_key, words
from nlp.framing_metrics import framing_metrics, stance_metrics

FORMAT = 2
C_FRAMING = 3.0     # embedding half, per framing
C_STANCE = 1.0      # embedding half, stance
C_TEXT = 10.0       # n-gram half (TF-IDF features are sparse and small-valued)
TEXT_SHARE = 0.5    # weight of the n-gram half in the averaged probabilities
SHORT_REPLY_WORDS = 5  # replies this short take their meaning from the parent
MAX_ITER = 3000
DEFAULT_THRESHOLD = 0.5
# A framing's threshold is tuned (on grouped out-of-fold scores) only with this many labelled
# positives spread over this many threads.
TUNE_MIN_POSITIVES = 20
TUNE_MIN_GROUPS = 5
MAX_CV_FOLDS = 10

VectorsFor = Callable[[list[str]], np.ndarray]


# --------------------------------------------------------------------------- cache locations

def cache_dir() -> Path:
    """``$FRAMEWATCH_CACHE_DIR`` or the platform's user cache folder (never the repository)."""
    override = os.environ.get("FRAMEWATCH_CACHE_DIR")
    if override:
        return Path(override)
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("framewatch", appauthor=False))
    except ImportError:  # pragma: no cover - platformdirs ships with prefect
        return Path.home() / ".cache" / "framewatch"


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class TextVectors:
    """Vectors for texts that are not stored posts (codebook texts, labelled files, CLI input).

    Each text is encoded once: vectors persist in an .npz per encoder version under the cache
    directory. Texts that are stored posts should use their stored embedding instead.
    """

    def __init__(self, encoder_version: str, encode: Callable[[list[str]], np.ndarray] | None = None,
                 folder: Path | None = None, persist: bool = True):
        self.encoder_version = encoder_version
        self._encode = encode
        self.persist = persist
        digest = hashlib.sha1(encoder_version.encode()).hexdigest()[:12]
        self.path = (folder or cache_dir()) / "embeddings" / f"texts-{digest}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        self.encoded = 0
        if persist and self.path.exists():
            try:
                data = np.load(self.path, allow_pickle=False)
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError):
                self._vectors = {}

    def _encoder(self) -> Callable[[list[str]], np.ndarray]:
        if self._encode is None:
            from functools import partial

            from nlp.embed import encode

            # fp32: which texts miss the cache changes batch make-up, and only fp32 vectors
            # are the same to 1e-7 whatever their batch neighbours (training stays deterministic)
            self._encode = partial(encode, precision="fp32")
        return self._encode

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Remember vectors computed elsewhere (e.g. stored post embeddings)."""
        for text, vector in zip(texts, vectors):
            self._vectors.setdefault(text_key(text), np.asarray(vector, dtype=np.float32))

    def __call__(self, texts: Sequence[str], remember: bool = True) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._vectors and key not in missing:
                missing[key] = text
        fresh: dict[str, np.ndarray] = {}
        if missing:
            encoded = self._encoder()(list(missing.values()))
            self.encoded += len(missing)
            fresh = dict(zip(missing, np.asarray(encoded, dtype=np.float32)))
            if remember:
                self._vectors.update(fresh)
                self._dirty = True
        if not keys:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([self._vectors[k] if k in self._vectors else fresh[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if not (self.persist and self._dirty):
            return
        keys = sorted(self._vectors)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))

        _atomic_write(self.path, write)
        self._dirty = False


# --------------------------------------------------------------------------- training data

@dataclass(frozen=True)
class TrainingItem:
    text: str
    framings: tuple[str, ...] | None  # None: not labelled for framings (stance examples)
    stance: str | None                # None: not labelled for stance (framing examples)
    group: str                        # the thread: grouped CV never splits one
    origin: str                       # "corpus" | "analyst" | "codebook"
    parent_text: str | None = None
    post_id: str | None = None
    parent_id: str | None = None

    @property
    def is_post(self) -> bool:
        return self.origin != "codebook"

    def fingerprint(self) -> list[Any]:
        return [self.text, self.parent_text or "", sorted(self.framings) if self.framings is not None else None,
                self.stance, self.group if self.is_post else "", self.origin]


def codebook_items(codebook: Codebook) -> list[TrainingItem]:
    """Examples are positives of their framing (and negatives of the others); counter-examples
    are negatives of every framing; stance examples train the stance model only."""
    items: list[TrainingItem] = []
    for framing in codebook.framings:
        items += [TrainingItem(t, (framing.key,), None, "codebook", "codebook") for t in framing.examples]
        items += [TrainingItem(t, (), None, "codebook", "codebook") for t in framing.counter_examples]
    for label in codebook.stance_labels:
        items += [TrainingItem(t, None, label, "codebook", "codebook") for t in codebook.stance_table(label).examples]
    return items


def code_version() -> str:
    """A hash of the classifier's own source, so a code change means a new model."""
    digest = hashlib.sha256()
    folder = Path(__file__).parent
    for name in ("codebook.py", "framing.py", "framing_features.py", "framing_metrics.py"):
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]


def model_version(codebook: Codebook, items: Sequence[TrainingItem], encoder_version: str) -> str:
    """``<codebook>-<hash>``: the hash covers training data, codebook, code and encoder."""
    digest = hashlib.sha256()
    payload = {
        "format": FORMAT,
        "code": code_version(),
        "encoder": encoder_version,
        "codebook": codebook.content_hash,
        "items": sorted(json.dumps(i.fingerprint(), ensure_ascii=False) for i in items),
    }
    digest.update(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode())
    return f"{codebook.name}-{digest.hexdigest()[:16]}"


# --------------------------------------------------------------------------- the model

@dataclass
class Prediction:
    framing_scores: np.ndarray   # (n, n_framings)
    present: np.ndarray          # (n, n_framings) bool
    stance_scores: np.ndarray    # (n, n_stances)

    def stances(self, labels: Sequence[str]) -> list[str]:
        return [labels[i] for i in self.stance_scores.argmax(axis=1)]

    def framings(self, keys: Sequence[str]) -> list[list[str]]:
        return [[k for k, on in zip(keys, row) if on] for row in self.present]


@dataclass
class Inputs:
    """What the model reads for n posts: own and parent vectors, own texts and parent texts."""

    own: np.ndarray
    parent: np.ndarray
    has_parent: np.ndarray
    texts: list[str]
    keys: list[str] = field(default_factory=list)  # text keys, for leaving a text out of its anchors
    parent_texts: list[str | None] = field(default_factory=list)  # empty: no parent texts known

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int]) -> "Inputs":
        index = list(index)
        return Inputs(self.own[index], self.parent[index], self.has_parent[index],
                      [self.texts[i] for i in index], [self.keys[i] for i in index] if self.keys else [],
                      [self.parent_texts[i] for i in index] if self.parent_texts else [])


def inputs_for(items: Sequence[TrainingItem], vectors_for: VectorsFor,
               stored: dict[str, np.ndarray] | None = None) -> Inputs:
    """Vectors for training items: stored post embeddings where there are some, else the text cache."""
    stored = stored or {}
    own = np.zeros((len(items), DIMENSIONS), dtype=np.float32)
    parent = np.zeros((len(items), DIMENSIONS), dtype=np.float32)
    has_parent = np.zeros(len(items), dtype=bool)
    need_own = [i for i, item in enumerate(items) if not (item.post_id and item.post_id in stored)]
    need_parent = [i for i, item in enumerate(items)
                   if item.parent_text and not (item.parent_id and item.parent_id in stored)]
    texts = [items[i].text for i in need_own] + [items[i].parent_text for i in need_parent]
    encoded = vectors_for(texts) if texts else np.zeros((0, DIMENSIONS), dtype=np.float32)
    for row, i in enumerate(need_own):
        own[i] = encoded[row]
    for row, i in enumerate(need_parent, start=len(need_own)):
        parent[i] = encoded[row]
        has_parent[i] = True
    for i, item in enumerate(items):
        if item.post_id and item.post_id in stored:
            own[i] = stored[item.post_id]
        if item.parent_id and item.parent_id in stored:
            parent[i] = stored[item.parent_id]
            has_parent[i] = True
    keys = [text_key(item.text) if not item.is_post else "" for item in items]
    return Inputs(own, parent, has_parent, [item.text for item in items], keys,
                  [item.parent_text if has_parent[i] else None for i, item in enumerate(items)])


def _lr(c: float) -> LogisticRegression:
    # newton-cg: the same deterministic L2 optimum as lbfgs, several times faster on the sparse
    # n-gram matrices and on the multinomial stance model.
    return LogisticRegression(C=c, class_weight="balanced", solver="newton-cg", max_iter=MAX_ITER)


def _fit_binary(x: Any, y: np.ndarray, c: float) -> LogisticRegression | float:
    if y.all() or not y.any():
        return float(y.mean()) if len(y) else 0.0  # a constant: nothing to separate
    return _lr(c).fit(x, y)


def _proba(model: LogisticRegression | float, x: Any) -> np.ndarray:
    if isinstance(model, float):
        return np.full(x.shape[0], model)
    return model.predict_proba(x)[:, 1]


def _stance_proba(model: Any, labels: Sequence[str], x: Any) -> np.ndarray:
    out = np.zeros((x.shape[0], len(labels)))
    if isinstance(model, str):
        out[:, list(labels).index(model)] = 1.0
        return out
    probs = model.predict_proba(x)
    for column, label in enumerate(model.classes_):
        out[:, list(labels).index(label)] = probs[:, column]
    return out


def _fit_stance(x: Any, y: list[str], labels: list[str], c: float) -> Any:
    if len(set(y)) >= 2:
        return _lr(c).fit(x, y)
    return y[0] if y else labels[-1]


class TextModel:
    """Word and character n-grams (TF-IDF) of a post's own words, for the lexical half of the
    ensemble. The vocabulary is learnt from the training texts only, so it is part of the model."""

    def __init__(self, texts: Sequence[str]):
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                     lowercase=True)
        texts = [_lexical(t) for t in texts]
        self.words.fit(texts)
        self.chars.fit(texts)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        texts = [_lexical(t) for t in texts]
        return sparse.hstack([self.words.transform(texts), self.chars.transform(texts)]).tocsr()


def _lexical(text: str) -> str:
    return " ".join(text.split())


def _with_bare_replies(items: Sequence[TrainingItem], inputs: Inputs, labels: Sequence[str]
                       ) -> tuple[list[TrainingItem], Inputs, list[bool]]:
    """Training rows plus, for every short reply with a parent ("exactly.", "same here"), a copy
    without the parent labelled no framing / neutral: on its own such a reply says nothing (the
    context rule of ANNOTATION.md; the copy gets a stance only if the codebook has "neutral").
    Also says per row whether its own words carry its label."""
    neutral = "neutral" if "neutral" in labels else None
    short = [i for i, item in enumerate(items)
             if inputs.has_parent[i] and len(words(item.text)) <= SHORT_REPLY_WORDS]
    own_words = [i not in set(short) for i in range(len(items))]
    if not short:
        return list(items), inputs, own_words
    bare = [TrainingItem(items[i].text, () if items[i].framings is not None else None,
                         neutral if items[i].stance is not None else None, items[i].group, items[i].origin)
            for i in short]
    zeros = np.zeros((len(short), inputs.parent.shape[1]), dtype=inputs.parent.dtype)
    more = Inputs(
        np.concatenate([inputs.own, inputs.own[short]]),
        np.concatenate([inputs.parent, zeros]),
        np.concatenate([inputs.has_parent, np.zeros(len(short), dtype=bool)]),
        list(inputs.texts) + [inputs.texts[i] for i in short],
        (list(inputs.keys) + [""] * len(short)) if inputs.keys else [],
        (list(inputs.parent_texts) + [None] * len(short)) if inputs.parent_texts else [],
    )
    return list(items) + bare, more, own_words + [True] * len(short)


@dataclass
class Parts:
    """The fitted halves: per framing an embedding model and an n-gram model, and the same two
    for stance. Scores are the mean of the two halves' probabilities."""

    space: FeatureSpace
    framing_keys: list[str]
    stance_labels: list[str]
    text_model: TextModel | None
    emb_framing: list[Any]
    text_framing: list[Any]
    emb_stance: Any
    text_stance: Any

    @classmethod
    def fit(cls, space: FeatureSpace, keys: list[str], labels: list[str], items: Sequence[TrainingItem],
            inputs: Inputs) -> "Parts":
        items, inputs, own_words = _with_bare_replies(items, inputs, labels)
        x = space.transform(inputs.own, inputs.parent, inputs.has_parent, inputs.texts, inputs.keys)
        text_model = TextModel([item.text for item in items])
        t = text_model.transform([item.text for item in items])
        framing_rows = [i for i, item in enumerate(items) if item.framings is not None]
        stance_rows = [i for i, item in enumerate(items) if item.stance is not None]
        # The n-gram half reads own words only: a short reply's label belongs to its parent.
        text_framing_rows = [i for i in framing_rows if own_words[i]]
        text_stance_rows = [i for i in stance_rows if own_words[i]]
        emb_framing, text_framing = [], []
        for key in keys:
            y = np.array([key in items[i].framings for i in framing_rows], dtype=bool)
            emb_framing.append(_fit_binary(x[framing_rows], y, C_FRAMING))
            y = np.array([key in items[i].framings for i in text_framing_rows], dtype=bool)
            text_framing.append(_fit_binary(t[text_framing_rows], y, C_TEXT))
        emb_stance = _fit_stance(x[stance_rows], [items[i].stance for i in stance_rows], labels, C_STANCE)
        text_stance = _fit_stance(t[text_stance_rows], [items[i].stance for i in text_stance_rows], labels, C_TEXT)
        return cls(space, keys, labels, text_model, emb_framing, text_framing, emb_stance, text_stance)

    def scores(self, inputs: Inputs, leave_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(framing probabilities (n, k), stance probabilities (n, s)).

        The n-gram half reads a post's own words; for a reply it is mixed with the same half's
        reading of the parent, with the weight the embedding context gives the parent (so a short
        "exactly." under a clear post inherits its reading, a long reply speaks for itself)."""
        n = len(inputs)
        x = self.space.transform(inputs.own, inputs.parent, inputs.has_parent, inputs.texts,
                                 inputs.keys if leave_out else None)
        emb_f = np.stack([_proba(m, x) for m in self.emb_framing], axis=1)
        emb_s = _stance_proba(self.emb_stance, self.stance_labels, x)
        t = self.text_model.transform(inputs.texts)
        text_f = np.stack([_proba(m, t) for m in self.text_framing], axis=1)
        text_s = _stance_proba(self.text_stance, self.stance_labels, t)
        parents = [i for i in range(n) if inputs.has_parent[i] and inputs.parent_texts and inputs.parent_texts[i]]
        if parents:
            n_words = np.array([len(words(inputs.texts[i])) for i in parents], dtype=np.float32)
            w = context_weights(n_words, np.ones(len(parents), dtype=bool))[:, None]
            tp = self.text_model.transform([inputs.parent_texts[i] for i in parents])
            text_f[parents] = (1 - w) * text_f[parents] + w * np.stack([_proba(m, tp) for m in self.text_framing], 1)
            text_s[parents] = (1 - w) * text_s[parents] + w * _stance_proba(self.text_stance, self.stance_labels, tp)
        return (1 - TEXT_SHARE) * emb_f + TEXT_SHARE * text_f, (1 - TEXT_SHARE) * emb_s + TEXT_SHARE * text_s


@dataclass
class FramingModel:
    version: str
    codebook: str
    codebook_hash: str
    framing_keys: list[str]
    stance_labels: list[str]
    parts: Parts
    thresholds: dict[str, float]
    card: dict[str, Any] = field(default_factory=dict)

    # .......................................................................... fitting

    @classmethod
    def fit(cls, codebook: Codebook, items: Sequence[TrainingItem], inputs: Inputs, version: str,
            vectors_for: VectorsFor, encoder_version: str) -> "FramingModel":
        space = FeatureSpace.build(codebook, vectors_for)
        keys, labels = codebook.framing_keys, codebook.stance_labels
        cv = grouped_cv(space, keys, labels, items, inputs)
        tuned = cv.pop("tuned_thresholds", {})
        thresholds = {key: tuned.get(key, DEFAULT_THRESHOLD) for key in keys}
        parts = Parts.fit(space, keys, labels, items, inputs)
        posts = [i for i in items if i.is_post]
        card = {
            "model_version": version,
            "codebook": codebook.name,
            "codebook_hash": codebook.content_hash,
            "encoder": encoder_version,
            "code_version": code_version(),
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_labels": len(posts),
            "n_analyst_labels": sum(i.origin == "analyst" for i in items),
            "n_written_labels": sum(i.origin == "written" for i in items),
            "n_codebook_examples": sum(not i.is_post for i in items),
            "n_groups": len({i.group for i in posts}),
            "thresholds": thresholds,
            "features": {"context": "own + w(n_words) * parent embedding", "anchors": len(space.groups),
                         "cue_words": {k: len(v) for k, v in space.cues.items()},
                         "ensemble": f"mean of embedding LR (C={C_FRAMING}) and word+char TF-IDF LR "
                                     f"(C={C_TEXT}), n-gram share {TEXT_SHARE}"},
            "cv": cv,
        }
        return cls(version, codebook.name, codebook.content_hash, keys, labels, parts, thresholds, card)

    # .......................................................................... predicting

    def predict(self, inputs: Inputs) -> Prediction:
        if len(inputs) == 0:
            return Prediction(np.zeros((0, len(self.framing_keys))), np.zeros((0, len(self.framing_keys)), bool),
                              np.zeros((0, len(self.stance_labels))))
        scores, stance = self.parts.scores(inputs)
        thresholds = np.array([self.thresholds[k] for k in self.framing_keys])
        return Prediction(scores, scores >= thresholds, stance)

    # .......................................................................... persistence

    def save(self, folder: Path | None = None) -> Path:
        path = model_path(self.codebook, self.version, folder)
        _atomic_write(path, lambda tmp: joblib.dump({"format": FORMAT, "model": self}, tmp, compress=3))
        return path

    @staticmethod
    def load(codebook: str, version: str, folder: Path | None = None) -> "FramingModel | None":
        path = model_path(codebook, version, folder)
        if not path.exists():
            return None
        try:
            data = joblib.load(path)
        except Exception:  # a truncated or foreign file: retrain rather than fail
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        model = data["model"]
        return model if getattr(model, "version", None) == version else None


def model_path(codebook: str, version: str, folder: Path | None = None) -> Path:
    return (folder or cache_dir()) / "framing" / "models" / codebook / f"{version}.joblib"


# --------------------------------------------------------------------------- validation

def grouped_cv(space: FeatureSpace, keys: list[str], labels: list[str], items: Sequence[TrainingItem],
               inputs: Inputs) -> dict[str, Any]:
    """Out-of-fold figures on the labelled posts, holding out whole threads.

    Codebook examples are always trained on and never scored. Folds are leave-one-thread-out up
    to MAX_CV_FOLDS threads, else threads are dealt round-robin (sorted) into MAX_CV_FOLDS folds.
    Per-framing thresholds are chosen on these out-of-fold scores (never on external data).
    """
    posts = [i for i, item in enumerate(items) if item.is_post]
    groups = sorted({items[i].group for i in posts})
    result: dict[str, Any] = {"method": "grouped by thread", "n_posts": len(posts), "n_groups": len(groups)}
    if len(groups) < 2:
        result["note"] = "fewer than two labelled threads: no cross-validation"
        return result
    n_folds = min(len(groups), MAX_CV_FOLDS)
    fold_of = {g: n % n_folds for n, g in enumerate(groups)}
    result["folds"] = n_folds
    scores = np.full((len(items), len(keys)), np.nan)
    stance_pred: dict[int, str] = {}
    for fold in range(n_folds):
        test = [i for i in posts if fold_of[items[i].group] == fold]
        if not test:
            continue
        held_out = set(test)
        train = [i for i in range(len(items)) if i not in held_out]
        parts = Parts.fit(space, keys, labels, [items[i] for i in train], inputs.subset(train))
        fold_scores, matrix = parts.scores(inputs.subset(test))
        scores[test] = fold_scores
        for row, i in enumerate(test):
            stance_pred[i] = labels[int(matrix[row].argmax())]
    framing_rows = [i for i in posts if items[i].framings is not None]
    gold = [items[i].framings for i in framing_rows]
    tuned: dict[str, float] = {}
    for k, key in enumerate(keys):
        y = np.array([key in items[i].framings for i in framing_rows])
        groups_with = {items[i].group for i in framing_rows if key in items[i].framings}
        if y.sum() >= TUNE_MIN_POSITIVES and len(groups_with) >= TUNE_MIN_GROUPS:
            tuned[key] = _best_threshold(y, scores[framing_rows, k])
    thresholds = {key: tuned.get(key, DEFAULT_THRESHOLD) for key in keys}
    predicted = [[key for k, key in enumerate(keys) if scores[i, k] >= thresholds[key]] for i in framing_rows]
    result["framings"] = framing_metrics(keys, gold, predicted)
    untuned = [[key for k, key in enumerate(keys) if scores[i, k] >= DEFAULT_THRESHOLD] for i in framing_rows]
    result["framings_at_default_threshold"] = {"macro_f1": framing_metrics(keys, gold, untuned)["macro_f1"]}
    stance_rows = [i for i in posts if items[i].stance is not None]
    result["stance"] = stance_metrics(labels, [items[i].stance for i in stance_rows],
                                      [stance_pred[i] for i in stance_rows])
    result["tuned_thresholds"] = tuned
    if tuned:
        result["note"] = "thresholds tuned on these out-of-fold scores: figures are slightly optimistic"
    return result


def _best_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    best = (-1.0, DEFAULT_THRESHOLD)
    for t in np.round(np.arange(0.2, 0.801, 0.025), 3):
        p = scores >= t
        tp = float((p & y).sum())
        f1 = 2 * tp / (p.sum() + y.sum()) if (p.sum() + y.sum()) else 0.0
        if f1 > best[0] + 1e-12:
            best = (f1, float(t))
    return best[1]


# --------------------------------------------------------------------------- entry point

@dataclass
class Trained:
    model: FramingModel
    retrained: bool
    seconds: float


def load_or_train(codebook: Codebook, items: Sequence[TrainingItem], vectors: TextVectors,
                  stored: dict[str, np.ndarray] | None = None, folder: Path | None = None) -> Trained:
    """The cached model for these training items, or a freshly fitted (and cached) one."""
    import time

    started = time.monotonic()
    if not any(i.framings is not None for i in items):
        raise ValueError("no training data: the codebook and label files hold no framing examples")
    version = model_version(codebook, items, vectors.encoder_version)
    model = FramingModel.load(codebook.name, version, folder)
    if model is not None:
        return Trained(model, False, time.monotonic() - started)
    inputs = inputs_for(items, vectors, stored)
    model = FramingModel.fit(codebook, items, inputs, version, vectors, vectors.encoder_version)
    vectors.save()
    model.save(folder)
    return Trained(model, True, time.monotonic() - started)
