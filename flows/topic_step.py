"""The topic step of the analyze flow: stable topic ids across nightly runs.

Runs after embeddings are stored. Each run does one of:

- fit     no topic model yet: BERTopic on every eligible post (needs ``[analysis]
          min_topic_posts``; below that nothing is stored and the status says so);
- assign  the usual night: posts without a topic go to the nearest existing topic (only the new
          posts' vectors are read; no UMAP, no refit);
- refit   the corpus grew by 25 % since the last fit, or ``refit=True``: a new model on all posts,
          merged into the current one so existing ids keep their meaning and new topics get new ids.

Models are saved next to the warehouse (``<warehouse>.topics/vNNNN/``); the warehouse records
which version is current and is written last, in one transaction, so a crash leaves the previous
state in place.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from prefect import task

from flows.context import run_logger, settings_from
from framewatch.config import Settings
from nlp.topics import (
    OUTLIER, ModelStore, TooFewPosts, TopicParams, Update, WordEncoder, assign_new, fit_new, needs_refit,
    refit_merge,
)
from warehouse import topics as db
from warehouse.db import open_warehouse, transaction

KEEP_VERSIONS = 3  # model folders kept on disk (the current one and the two before it)


def update_topics(settings: Settings, run_id: str, refit: bool = False, *, params: TopicParams | None = None,
                  encode_words: WordEncoder | None = None) -> dict[str, Any]:
    """Fit, assign or refit as needed; returns a summary (``status`` is a sentence, ``action`` one
    of fit | refit | assign | none)."""
    log = run_logger()
    started = time.monotonic()
    params = params or TopicParams()
    store = ModelStore(db.topics_folder(settings.warehouse_path))
    con = open_warehouse(settings.warehouse_path)
    try:
        result = _update(con, store, run_id, refit, settings.analysis.min_topic_posts, params, encode_words, log)
    finally:
        con.close()
    result["seconds"] = round(time.monotonic() - started, 2)
    log.info("topics: %s (%.1f s)", result["status"], result["seconds"])
    return result


def _update(con, store: ModelStore, run_id: str, refit: bool, min_posts: int, params: TopicParams,
            encode_words: WordEncoder | None, log) -> dict[str, Any]:
    counts = db.eligible_by_model(con)
    current = db.current_model(con)
    warnings: list[str] = []
    fresh_reason = None
    if current is not None and not store.exists(current["model_version"]):
        fresh_reason = f"model folder {store.path(current['model_version'])} is missing; topic ids restart"
        current = None
    majority = max(counts, key=lambda m: (counts[m], m)) if counts else None
    if current is not None and majority is not None and majority != current["embedding_model"] \
            and counts[majority] > counts.get(current["embedding_model"], 0):
        fresh_reason = (f"posts are now embedded with {majority!r}, the topics were fitted on "
                        f"{current['embedding_model']!r}; topic ids restart")
        current = None
    if fresh_reason:
        warnings.append(fresh_reason)
        log.warning("topics: %s", fresh_reason)
    embedding_model = current["embedding_model"] if current is not None else majority
    n_posts = counts.get(embedding_model, 0) if embedding_model else 0
    base = {"run_id": run_id, "n_posts": n_posts, "min_topic_posts": min_posts, "topics_folder": str(store.folder),
            "warnings": warnings, "model_version": current["model_version"] if current is not None else None,
            "n_topics": None, "n_new_topics": 0, "n_assigned": 0, "n_outliers": 0}

    if current is None:
        if n_posts < min_posts:
            return base | {"action": "none", "status": f"too few posts ({n_posts} < {min_posts})"}
        return _fit(con, store, run_id, embedding_model, params, encode_words, base, fresh=fresh_reason is not None)
    wants_refit = refit or needs_refit(n_posts, current["n_posts"], params.refit_growth)
    if wants_refit and n_posts >= min_posts:
        return _refit(con, store, run_id, current, params, encode_words, base)
    if wants_refit:
        warnings.append(f"refit skipped: too few posts ({n_posts} < {min_posts})")
    return _assign(con, store, run_id, current, base)


def _frame(update: Update, hashes: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"post_id": update.post_ids, "content_hash": hashes,
                         "topic_id": update.assigned, "probability": update.probability})


def _summary(update: Update, base: dict[str, Any]) -> dict[str, Any]:
    assigned = np.asarray(update.assigned)
    return base | {
        "action": update.action,
        "model_version": update.topics.version,
        "n_topics": int(len(update.topics.topic_ids)),
        "n_new_topics": len(update.new_topic_ids) if update.action != "assign" else 0,
        "n_assigned": int((assigned != OUTLIER).sum()),
        "n_outliers": int((assigned == OUTLIER).sum()),
        **update.stats,
    }


def _save_and_record(con, store: ModelStore, update: Update, frame: pd.DataFrame, run_id: str,
                     embedding_model: str, params: TopicParams, fresh: bool) -> None:
    path = store.save(update)  # first the files, then the warehouse says they are current
    version = update.topics.version
    with transaction(con):
        if fresh:
            db.clear_assignments(con)
        db.replace_topics(con, update.topics.topic_rows())
        db.write_assignments(con, frame, version, run_id)
        db.drop_stale(con)
        db.record_model(con, model_version=version, kind=update.action, run_id=run_id, folder=path.name,
                        embedding_model=embedding_model, n_posts=len(frame),
                        n_topics=len(update.topics.topic_ids), n_new_topics=len(update.new_topic_ids),
                        clusterer=update.stats.get("clusterer", ""), params=params.as_dict())
    versions = db.model_versions(con)
    store.prune(set(versions[-KEEP_VERSIONS:]))


def _next_version(con) -> int:
    versions = db.model_versions(con)
    return (versions[-1] + 1) if versions else 1


def _fit(con, store, run_id, embedding_model, params, encode_words, base, fresh: bool) -> dict[str, Any]:
    frame, vectors = db.read_corpus(con, embedding_model)
    version = _next_version(con)
    meta = {"embedding_model": embedding_model, "run_id": run_id, "params": params.as_dict()}
    try:
        update = fit_new(frame.post_id.tolist(), frame.text.tolist(), vectors, version, params, encode_words, meta)
    except TooFewPosts as exc:
        return base | {"action": "none", "status": str(exc)}
    rows = _frame(update, frame.content_hash.tolist())
    _save_and_record(con, store, update, rows, run_id, embedding_model, params, fresh=fresh)
    result = _summary(update, base)
    result["status"] = (f"fitted {result['n_topics']} topics on {len(rows)} posts"
                        + (" (topic ids restarted)" if fresh else ""))
    return result


def _refit(con, store, run_id, current, params, encode_words, base) -> dict[str, Any]:
    embedding_model = current["embedding_model"]
    frame, vectors = db.read_corpus(con, embedding_model)
    version = _next_version(con)
    topics = store.load(current["model_version"])
    model = store.load_model(current["model_version"])
    previous = [None if pd.isna(p) else int(p) for p in frame.previous]
    meta = {"embedding_model": embedding_model, "run_id": run_id, "params": params.as_dict(),
            "merged_into": current["model_version"]}
    try:
        update = refit_merge(model, topics, frame.post_id.tolist(), frame.text.tolist(), vectors, previous,
                             version, params, encode_words, meta)
    except TooFewPosts as exc:
        base["warnings"].append(f"refit found no topics ({exc}); kept model {current['model_version']}")
        return _assign(con, store, run_id, current, base)
    rows = _frame(update, frame.content_hash.tolist())
    _save_and_record(con, store, update, rows, run_id, embedding_model, params, fresh=False)
    result = _summary(update, base)
    result["status"] = (f"refitted on {len(rows)} posts: {result['n_topics']} topics, "
                        f"{result['n_new_topics']} new")
    return result


def _assign(con, store, run_id, current, base) -> dict[str, Any]:
    frame, vectors = db.read_unassigned(con, current["embedding_model"])
    topics = store.load(current["model_version"])
    base = base | {"n_topics": int(len(topics.topic_ids))}
    if frame.empty:
        with transaction(con):
            db.drop_stale(con)
        return base | {"action": "assign", "status": "up to date: no new posts"}
    update = assign_new(topics, frame.post_id.tolist(), vectors)
    with transaction(con):
        db.write_assignments(con, _frame(update, frame.content_hash.tolist()), topics.version, run_id)
        db.drop_stale(con)
    result = _summary(update, base)
    result["status"] = (f"assigned {len(frame)} new posts to {result['n_topics']} topics "
                        f"({result['n_outliers']} fit no topic yet)")
    return result


@task(name="topics", task_run_name="topics-{run_id}")
def topics_task(config_path: str, run_id: str, refit: bool = False) -> dict[str, Any]:
    return update_topics(settings_from(config_path), run_id, refit=refit)
