"""The framing and stance classifier: logistic regressions over stored MiniLM vectors.

Training data is whatever the project itself holds: the labelled corpus files named in the
config, the codebook's examples and counter-examples, and labels analysts imported into the
warehouse. A model's version is a hash of that data, of this code and of the encoder, so the
same labels always give the same model (lbfgs, no randomness) and a new label gives a new one.
Fitted models are cached outside the repository (``FRAMEWATCH_CACHE_DIR`` or the user cache
directory), so a run only trains when its training data changed.

Per framing a binary model with balanced class weights says whether the post carries it; the
stance model is multinomial. Thresholds stay at 0.5 (balanced weights make that the point
where both classes are equally likely) until a framing has enough labelled positives across
enough threads to tune its threshold on grouped out-of-fold scores.
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
from sklearn.linear_model import LogisticRegression

from nlp.codebook import Codebook
from nlp.framing_features import DIMENSIONS, FeatureSpace, text_key
from nlp.framing_metrics import framing_metrics, stance_metrics

FORMAT = 1
C_FRAMING = 1.0
C_STANCE = 1.0
MAX_ITER = 3000
DEFAULT_THRESHOLD = 0.5
# A framing's threshold is tuned only with this many labelled positives spread over this many
# threads; tuned thresholds are pulled halfway back to 0.5 (few labels make them noisy).
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
            from nlp.embed import encode

            self._encode = encode
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
    """What the model reads for n posts: own and parent vectors, and own texts."""

    own: np.ndarray
    parent: np.ndarray
    has_parent: np.ndarray
    texts: list[str]
    keys: list[str] = field(default_factory=list)  # text keys, for leaving a text out of its anchors

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int]) -> "Inputs":
        index = list(index)
        return Inputs(self.own[index], self.parent[index], self.has_parent[index],
                      [self.texts[i] for i in index], [self.keys[i] for i in index] if self.keys else [])


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
    return Inputs(own, parent, has_parent, [item.text for item in items], keys)


def _fit_binary(x: np.ndarray, y: np.ndarray) -> LogisticRegression | float:
    if y.all() or not y.any():
        return float(y.mean()) if len(y) else 0.0  # a constant: nothing to separate
    return LogisticRegression(C=C_FRAMING, class_weight="balanced", max_iter=MAX_ITER).fit(x, y)


def _proba(model: LogisticRegression | float, x: np.ndarray) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(x), model)
    return model.predict_proba(x)[:, 1]


@dataclass
class FramingModel:
    version: str
    codebook: str
    codebook_hash: str
    framing_keys: list[str]
    stance_labels: list[str]
    space: FeatureSpace
    framing_models: list[Any]
    stance_model: Any
    thresholds: dict[str, float]
    card: dict[str, Any] = field(default_factory=dict)

    # .......................................................................... fitting

    @classmethod
    def _fit_parts(cls, space: FeatureSpace, framing_keys: list[str], stance_labels: list[str],
                   items: Sequence[TrainingItem], inputs: Inputs) -> tuple[list[Any], Any]:
        x = space.transform(inputs.own, inputs.parent, inputs.has_parent, inputs.texts, inputs.keys)
        framing_rows = [i for i, item in enumerate(items) if item.framings is not None]
        models = []
        for key in framing_keys:
            y = np.array([key in items[i].framings for i in framing_rows], dtype=bool)
            models.append(_fit_binary(x[framing_rows], y))
        stance_rows = [i for i, item in enumerate(items) if item.stance is not None]
        y_stance = [items[i].stance for i in stance_rows]
        if len(set(y_stance)) >= 2:
            stance = LogisticRegression(C=C_STANCE, class_weight="balanced", max_iter=MAX_ITER)
            stance.fit(x[stance_rows], y_stance)
        else:
            stance = y_stance[0] if y_stance else stance_labels[-1]
        return models, stance

    @staticmethod
    def _stance_matrix(stance: Any, stance_labels: list[str], x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), len(stance_labels)))
        if isinstance(stance, str):
            out[:, stance_labels.index(stance)] = 1.0
            return out
        probs = stance.predict_proba(x)
        for column, label in enumerate(stance.classes_):
            out[:, stance_labels.index(label)] = probs[:, column]
        return out

    @classmethod
    def fit(cls, codebook: Codebook, items: Sequence[TrainingItem], inputs: Inputs, version: str,
            vectors_for: VectorsFor, encoder_version: str) -> "FramingModel":
        space = FeatureSpace.build(codebook, vectors_for)
        keys, labels = codebook.framing_keys, codebook.stance_labels
        cv = grouped_cv(space, keys, labels, items, inputs)
        thresholds = {}
        for key in keys:
            tuned = cv.get("tuned_thresholds", {}).get(key)
            thresholds[key] = round((tuned + DEFAULT_THRESHOLD) / 2, 3) if tuned is not None else DEFAULT_THRESHOLD
        cv.pop("tuned_thresholds", None)
        framing_models, stance_model = cls._fit_parts(space, keys, labels, items, inputs)
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
            "n_codebook_examples": sum(not i.is_post for i in items),
            "n_groups": len({i.group for i in posts}),
            "thresholds": thresholds,
            "features": {"context": "own + w(n_words) * parent embedding", "anchors": len(space.groups),
                         "cue_words": {k: len(v) for k, v in space.cues.items()}},
            "cv": cv,
        }
        return cls(version, codebook.name, codebook.content_hash, keys, labels, space,
                   framing_models, stance_model, thresholds, card)

    # .......................................................................... predicting

    def predict(self, inputs: Inputs) -> Prediction:
        if len(inputs) == 0:
            return Prediction(np.zeros((0, len(self.framing_keys))), np.zeros((0, len(self.framing_keys)), bool),
                              np.zeros((0, len(self.stance_labels))))
        x = self.space.transform(inputs.own, inputs.parent, inputs.has_parent, inputs.texts)
        scores = np.stack([_proba(m, x) for m in self.framing_models], axis=1)
        thresholds = np.array([self.thresholds[k] for k in self.framing_keys])
        stance = self._stance_matrix(self.stance_model, self.stance_labels, x)
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
    x_all = space.transform(inputs.own, inputs.parent, inputs.has_parent, inputs.texts, inputs.keys)
    for fold in range(n_folds):
        test = [i for i in posts if fold_of[items[i].group] == fold]
        if not test:
            continue
        held_out = set(test)
        train = [i for i in range(len(items)) if i not in held_out]
        tr_items = [items[i] for i in train]
        models, stance = FramingModel._fit_parts(space, keys, labels, tr_items, inputs.subset(train))
        x = x_all[test]
        for k, model in enumerate(models):
            scores[test, k] = _proba(model, x)
        matrix = FramingModel._stance_matrix(stance, labels, x)
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
    thresholds = {key: round((tuned[key] + DEFAULT_THRESHOLD) / 2, 3) if key in tuned else DEFAULT_THRESHOLD
                  for key in keys}
    predicted = [[key for k, key in enumerate(keys) if scores[i, k] >= thresholds[key]] for i in framing_rows]
    result["framings"] = framing_metrics(keys, gold, predicted)
    stance_rows = [i for i in posts if items[i].stance is not None]
    result["stance"] = stance_metrics(labels, [items[i].stance for i in stance_rows],
                                      [stance_pred[i] for i in stance_rows])
    result["tuned_thresholds"] = tuned
    if tuned:
        result["note"] = "thresholds tuned on these out-of-fold scores: figures are slightly optimistic"
    return result


def _best_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    best = (-1.0, DEFAULT_THRESHOLD)
    for t in np.round(np.arange(0.1, 0.91, 0.05), 2):
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
