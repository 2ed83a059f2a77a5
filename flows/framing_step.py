"""The framing step of the analyze flow: (re)train when the labels changed, classify new posts.

Training data = the labelled corpus files of ``[analysis] labels`` (their posts' texts come
from the warehouse, or from the config's interchange files when the warehouse does not hold
them) + the codebook's examples + labels analysts imported into the warehouse. Posts are
classified from their stored embedding and their parent's, so nothing is encoded again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task

from flows.context import collector_context, run_logger, settings_from
from framewatch.config import Settings
from framewatch.jsonl import read_jsonl
from nlp import embed
from nlp.codebook import Codebook, load_codebook
from nlp.framing import (
    Inputs, Prediction, TextVectors, Trained, TrainingItem, codebook_items, load_or_train,
)
from nlp.text import html_to_text
from warehouse import framings as store
from warehouse.db import open_warehouse
from warehouse.store import make_post_id

CHUNK = 5000


def codebook_for(settings: Settings) -> Codebook:
    """The configured codebook (CodebookError names the file and key when it is invalid)."""
    return load_codebook(settings.resolve(settings.analysis.codebook))


# --------------------------------------------------------------------------- training data

@dataclass
class TrainingSet:
    items: list[TrainingItem]
    labelled_ids: set[str] = field(default_factory=set)   # posts with a label (shipped or analyst)
    problems: list[str] = field(default_factory=list)

    @property
    def n_labels(self) -> int:
        return sum(i.is_post for i in self.items)


def _label_rows(path: Path, codebook: Codebook, problems: list[str]) -> list[dict[str, Any]]:
    rows = []
    if not path.exists():
        problems.append(f"{path}: label file not found")
        return rows
    for line_no, row, problem in read_jsonl(path):
        try:
            if problem:
                raise ValueError(problem)
            if not row.get("id"):
                raise ValueError("needs an id")
            framings = row.get("framings") or []
            if not isinstance(framings, list):
                raise ValueError("framings must be a list")
            stance = row.get("stance")
            codebook.check_labels(framings, stance)
            if stance is None:
                raise ValueError("needs a stance")
        except ValueError as exc:
            problems.append(f"{path}:{line_no}: {exc}")
            continue
        rows.append(row | {"_where": f"{path}:{line_no}", "_file": path.stem})
    return rows


def file_posts(settings: Settings) -> dict[str, dict[str, Any]]:
    """Posts of the config's interchange-file sources (jsonl/csv), read as collect would store them."""
    from flows.sources import build_collector
    from flows.sources.interchange import parse_row

    posts: dict[str, dict[str, Any]] = {}
    for source in settings.sources:
        if source.type not in ("jsonl", "csv"):
            continue
        try:
            collector = build_collector(source.name, source.type, source.options(), collector_context(settings))
            site = collector.options.site or collector.name
            with collector.path.open(encoding="utf-8", newline="") as handle:
                for _, row, problem in collector.rows(handle):
                    if problem is not None:
                        continue
                    try:
                        post = parse_row(row, collector.options.platform, site)
                    except ValueError:
                        continue
                    pid = make_post_id(post.platform, post.site, post.native_id)
                    posts[pid] = {
                        "text": html_to_text(post.content),
                        "thread_id": make_post_id(post.platform, post.site, post.thread_native_id or post.native_id),
                        "parent_id": make_post_id(post.platform, post.site, post.parent_native_id)
                        if post.parent_native_id else None,
                    }
        except Exception:  # an unreadable source: its labels are reported as unresolved below
            continue
    return posts


def _str(value: Any) -> str | None:
    """A text column's value, or None for SQL NULL (pandas gives NaN or None)."""
    return value if isinstance(value, str) and value else None


def _has_label_tables(con) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'framing_label_store'"
    ).fetchone()[0])


def training_set(settings: Settings, codebook: Codebook, con=None) -> TrainingSet:
    """Shipped labels + codebook examples + (with a warehouse connection) analysts' labels."""
    problems: list[str] = []
    rows = []
    for path in settings.analysis.labels:
        rows += _label_rows(settings.resolve(path), codebook, problems)
    for row in rows:
        platform, site = row.get("platform") or "import", row.get("site") or "import"
        row["_post_id"] = make_post_id(platform, site, str(row["id"]))
    wanted = [r["_post_id"] for r in rows if not r.get("text")]
    known: dict[str, dict[str, Any]] = {}
    if con is not None and wanted:
        frame = store.post_texts(con, wanted)
        known = {r.post_id: {"text": r.text, "thread_id": _str(r.thread_id), "parent_id": _str(r.parent_id),
                             "parent_text": _str(r.parent_text)}
                 for r in frame.itertuples()}
    if any(pid not in known for pid in wanted):
        from_files = file_posts(settings)
        for pid in wanted:
            if pid not in known and pid in from_files:
                post = dict(from_files[pid])
                parent = from_files.get(post["parent_id"]) if post["parent_id"] else None
                post["parent_text"] = parent["text"] if parent else None
                known[pid] = post

    by_post: dict[str, TrainingItem] = {}
    for row in rows:
        pid = row["_post_id"]
        origin = "corpus"
        if row.get("text"):
            # Self-contained label lines (text inline, e.g. the written training set): the
            # thread is `thread_id` or `thread`, namespaced by the file so groups never merge
            # across files; `parent_text` gives a reply its context.
            thread = row.get("thread_id") or row.get("thread")
            post = {"text": str(row["text"]), "parent_text": _str(row.get("parent_text")), "parent_id": None,
                    "thread_id": f"{row['_file']}:{thread}" if thread else pid}
            origin = "written"
        elif pid in known:
            post = known[pid]
        else:
            problems.append(f"{row['_where']}: post {pid} has no text here (not in the warehouse or the "
                            "config's files, and the label line has no text)")
            continue
        group = post.get("thread_id") or row.get("thread_id") or pid
        by_post[pid] = TrainingItem(post["text"], tuple(sorted(set(row.get("framings") or []))), row["stance"],
                                    str(group), origin, post.get("parent_text"), pid, post.get("parent_id"))
    if con is not None and _has_label_tables(con):
        for r in store.analyst_labels(con, codebook.name).itertuples():
            by_post[r.post_id] = TrainingItem(
                r.text, tuple(sorted(set(r.framings))), r.stance, _str(r.thread_id) or r.post_id, "analyst",
                _str(r.parent_text), r.post_id, _str(r.parent_id))
    items = [by_post[k] for k in sorted(by_post)] + codebook_items(codebook)
    return TrainingSet(items, set(by_post), problems)


def trained_model(settings: Settings, codebook: Codebook, con=None,
                  vectors: TextVectors | None = None) -> tuple[Trained, TrainingSet]:
    """The model for the current training data: loaded from the cache or fitted now."""
    tset = training_set(settings, codebook, con)
    encoder = embed.model_version()
    vectors = vectors or TextVectors(encoder)
    stored: dict[str, np.ndarray] = {}
    if con is not None:
        ids = [i.post_id for i in tset.items] + [i.parent_id for i in tset.items]
        stored = store.stored_vectors(con, [i for i in ids if i], encoder)
    return load_or_train(codebook, tset.items, vectors, stored), tset


# --------------------------------------------------------------------------- prediction frames

def prediction_frames(model, post_ids: list[str], input_hashes: list[str],
                      prediction: Prediction) -> tuple[pd.DataFrame, pd.DataFrame]:
    n, keys, labels = len(post_ids), model.framing_keys, model.stance_labels
    framings = pd.DataFrame({
        "post_id": np.repeat(np.array(post_ids, dtype=object), len(keys)),
        "input_hash": np.repeat(np.array(input_hashes, dtype=object), len(keys)),
        "framing": np.tile(np.array(keys, dtype=object), n),
        "score": prediction.framing_scores.reshape(-1).astype(float),
        "present": prediction.present.reshape(-1).astype(bool),
    })
    chosen = np.zeros_like(prediction.stance_scores, dtype=bool)
    if n:
        chosen[np.arange(n), prediction.stance_scores.argmax(axis=1)] = True
    stances = pd.DataFrame({
        "post_id": np.repeat(np.array(post_ids, dtype=object), len(labels)),
        "input_hash": np.repeat(np.array(input_hashes, dtype=object), len(labels)),
        "stance": np.tile(np.array(labels, dtype=object), n),
        "score": prediction.stance_scores.reshape(-1).astype(float),
        "chosen": chosen.reshape(-1),
    })
    return framings, stances


def _summary(card: dict[str, Any]) -> dict[str, Any]:
    cv = card.get("cv", {})
    per = (cv.get("framings") or {}).get("per_framing", {})
    return {
        "groups": cv.get("n_groups"),
        "framings": {k: {m: v[m] for m in ("precision", "recall", "f1")} for k, v in per.items()},
        "framing_macro_f1": (cv.get("framings") or {}).get("macro_f1"),
        "stance_macro_f1": (cv.get("stance") or {}).get("macro_f1"),
        "stance_kappa": (cv.get("stance") or {}).get("kappa"),
    }


def classify_posts(settings: Settings, run_id: str) -> dict[str, Any]:
    """Train if the labels changed (else load the cached model), classify posts lacking a
    prediction from the current model, store predictions and the model card."""
    log = run_logger()
    started = time.monotonic()
    codebook = codebook_for(settings)
    encoder = embed.model_version()
    con = open_warehouse(settings.warehouse_path)
    classified = 0
    try:
        trained, tset = trained_model(settings, codebook, con)
        model = trained.model
        for problem in tset.problems:
            log.warning("%s", problem)
        store.store_model_card(con, model.card)
        forgotten = store.forget_deleted(con)
        seen: set[str] = set()
        predict_seconds = 0.0
        while True:
            frame, own, parent = store.unclassified_posts(con, codebook.name, model.version, encoder, CHUNK)
            if frame.empty:
                break
            if seen.issuperset(frame.post_id):
                raise RuntimeError("framing predictions were not stored; stopping instead of looping")
            seen.update(frame.post_id)
            tick = time.monotonic()
            texts = [f"{s}\n{t}" if isinstance(s, str) and s else t for s, t in zip(frame.spoiler_text, frame.text)]
            parent_texts = [t if isinstance(t, str) and t else None for t in frame.parent_text]
            prediction = model.predict(Inputs(own, parent, frame.has_parent.to_numpy(bool), texts,
                                              parent_texts=parent_texts))
            predict_seconds += time.monotonic() - tick
            framings, stances = prediction_frames(model, frame.post_id.tolist(), frame.input_hash.tolist(), prediction)
            store.store_predictions(con, codebook.name, model.version, framings, stances)
            classified += len(frame)
    finally:
        con.close()
    seconds = time.monotonic() - started
    stats = {
        "codebook": codebook.name,
        "model_version": model.version,
        "retrained": trained.retrained,
        "train_seconds": round(trained.seconds, 2),
        "n_labels": model.card.get("n_labels"),
        "n_analyst_labels": model.card.get("n_analyst_labels"),
        "classified": classified,
        "forgotten": forgotten,
        "seconds": round(seconds, 2),
        "posts_per_s": round(classified / predict_seconds, 1) if classified and predict_seconds else None,
        "cv": _summary(model.card),
        "problems": tset.problems,
    }
    log.info("framings: %d posts classified with %s (%s)", classified, model.version,
             "retrained" if trained.retrained else "cached model")
    return stats


@task(name="classify-framings")
def classify_task(config_path: str, run_id: str) -> dict[str, Any]:
    return classify_posts(settings_from(config_path), run_id)
