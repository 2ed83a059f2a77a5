"""The analyze flow: spaCy + embeddings for new or changed posts, then framings and topics.

Each chunk of pending posts is read from the warehouse, processed in memory (spaCy on a
worker thread while MiniLM encodes on the main one: both release the GIL in their inner
loops), and written back in one transaction, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pandas as pd
from prefect import flow, task

from flows.context import run_logger, settings_from
from flows.recording import recorded_run
from framewatch.config import Settings
from nlp import embed, linguistic
from warehouse.analysis import count_pending, embedding_frame, pending_posts, store_analysis
from warehouse.db import open_warehouse

Progress = Callable[[int, int], None]


def _embedding_text(text: str, spoiler: str | None) -> str:
    return f"{spoiler}\n{text}" if spoiler else text


def _nlp_frames(chunk: pd.DataFrame, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    todo = chunk[chunk.need_nlp]
    if todo.empty:
        return pd.DataFrame(), pd.DataFrame()
    results = linguistic.analyse(todo.text.tolist(), todo.source_lang.tolist(), model=model)
    name = linguistic.pipeline_name(model)
    nlp_rows = pd.DataFrame({
        "post_id": todo.post_id.tolist(),
        "content_hash": todo.content_hash.tolist(),
        "lang": [r.lang for r in results],
        "is_english": [r.is_english for r in results],
        "n_tokens": [r.n_tokens for r in results],
        "n_sentences": [len(r.sentences) for r in results],
        "sentences": [r.sentences for r in results],
        "lemmas": [r.lemmas for r in results],
        "pipeline": name,
    })
    entities = [(pid, *ent) for pid, r in zip(todo.post_id, results) for ent in r.entities]
    entity_rows = pd.DataFrame(entities, columns=["post_id", "text", "label", "start_char", "end_char"])
    return nlp_rows, entity_rows


def analyze_posts(settings: Settings, run_id: str, progress: Progress | None = None) -> dict[str, Any]:
    """Process every pending post; returns counts and throughput."""
    log = run_logger()
    started = time.monotonic()
    model_name = embed.model_version()
    chunk_size = settings.analysis.batch_size
    con = open_warehouse(settings.warehouse_path)
    done = embedded = 0
    try:
        total = count_pending(con, model_name)
        if progress:
            progress(0, total)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacy") as pool:
            while True:
                chunk = pending_posts(con, model_name, chunk_size)
                if chunk.empty:
                    break
                spacy_job = pool.submit(_nlp_frames, chunk, settings.analysis.spacy_model)
                todo = chunk[chunk.need_embedding]
                vectors = embed.encode([_embedding_text(t, s) for t, s in zip(todo.text, todo.spoiler_text)])
                nlp_rows, entity_rows = spacy_job.result()
                store_analysis(con, nlp_rows, entity_rows,
                               embedding_frame(todo.post_id.tolist(), todo.content_hash.tolist(), vectors),
                               model_name)
                done += len(chunk)
                embedded += len(todo)
                log.info("analysed %d/%d posts (%.0f posts/s)", done, total, done / (time.monotonic() - started))
                if progress:
                    progress(done, total)
    finally:
        con.close()
    seconds = time.monotonic() - started
    stats = {"posts": done, "embedded": embedded, "seconds": round(seconds, 2),
             "posts_per_s": round(done / seconds, 1) if seconds and done else None}
    log.info("analyzed %d posts (%d embedded) in %.1f s", done, embedded, seconds)
    return stats


@task(name="nlp-and-embeddings")
def analyze_posts_task(config_path: str, run_id: str) -> dict[str, Any]:
    return analyze_posts(settings_from(config_path), run_id)


@flow(name="framewatch-analyze")
def analyze_flow(config_path: str, run_id: str, refit_topics: bool = False) -> dict[str, Any]:
    """spaCy + embeddings, then the framing classifier and topics over the stored vectors."""
    from flows.framing_step import classify_task
    from flows.topic_step import topics_task

    settings = settings_from(config_path)
    with recorded_run(settings, "analyze", run_id) as stats:
        stats["nlp"] = analyze_posts_task(config_path, run_id)
        stats["framings"] = classify_task(config_path, run_id)
        stats["topics"] = topics_task(config_path, run_id, refit_topics)
    return stats
