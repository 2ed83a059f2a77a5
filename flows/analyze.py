"""The analyze flow: spaCy + embeddings for new or changed posts, then framings and topics.

Pending posts are read from the warehouse in chunks, each chunk is split into one batch per
worker (``nlp.parallel``: spaCy and MiniLM on worker processes, one core each), and the
chunk's results are written back in one transaction, so an interrupted run resumes where it
stopped. While workers compute, the next chunk is already queued and the previous one is
being written: the warehouse is touched only by this (the single writer) process.
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import nullcontext
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

import pandas as pd
from prefect import flow, task

from flows.context import run_logger, settings_from
from flows.recording import recorded_run
from framewatch.config import AnalysisConfig, Settings
from nlp import embed
from nlp.batch import AnalysisBatch, AnalysisResult
from nlp.parallel import BatchRunner, worker_count
from warehouse.analysis import count_pending, embedding_frame, pending_posts, store_analysis
from warehouse.db import open_warehouse

Progress = Callable[[int, int], None]
CHUNKS_IN_FLIGHT = 2


def _embedding_text(text: str, spoiler: str | None) -> str:
    return f"{spoiler}\n{text}" if spoiler else text


def _split(chunk: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    """Deal posts out by text length so every worker gets a similar amount of text."""
    if parts <= 1:
        return [chunk]
    ordered = chunk.assign(_len=chunk.text.str.len()).sort_values("_len", kind="stable").drop(columns="_len")
    return [part for part in (ordered.iloc[i::parts] for i in range(parts)) if len(part)]


def _batch(part: pd.DataFrame, analysis: AnalysisConfig) -> AnalysisBatch:
    todo_nlp = part[part.need_nlp]
    todo_embed = part[part.need_embedding]
    return AnalysisBatch(
        nlp_texts=todo_nlp.text.tolist(), declared_langs=todo_nlp.source_lang.tolist(),
        embed_texts=[_embedding_text(t, s) for t, s in zip(todo_embed.text, todo_embed.spoiler_text)],
        spacy_model=analysis.spacy_model, entities=analysis.entities, precision=analysis.encoder_precision,
    )


def _nlp_frames(part: pd.DataFrame, result: AnalysisResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    todo = part[part.need_nlp]
    results = result.analyses
    nlp_rows = pd.DataFrame({
        "post_id": todo.post_id.tolist(),
        "content_hash": todo.content_hash.tolist(),
        "lang": [r.lang for r in results],
        "is_english": [r.is_english for r in results],
        "n_tokens": [r.n_tokens for r in results],
        "n_sentences": [len(r.sentences) for r in results],
        "sentences": [r.sentences for r in results],
        "lemmas": [r.lemmas for r in results],
        "pipeline": result.pipeline,
    })
    entities = [(pid, *ent) for pid, r in zip(todo.post_id, results) for ent in r.entities]
    entity_rows = pd.DataFrame(entities, columns=["post_id", "text", "label", "start_char", "end_char"])
    return nlp_rows, entity_rows


def _store_chunk(con, parts: list[pd.DataFrame], results: list[AnalysisResult], model_name: str) -> int:
    nlp_frames, entity_frames, embedding_frames = [], [], []
    for part, result in zip(parts, results):
        nlp_rows, entity_rows = _nlp_frames(part, result)
        todo = part[part.need_embedding]
        nlp_frames.append(nlp_rows)
        entity_frames.append(entity_rows)
        embedding_frames.append(embedding_frame(todo.post_id.tolist(), todo.content_hash.tolist(), result.vectors))
    embeddings = pd.concat(embedding_frames, ignore_index=True)
    store_analysis(con, pd.concat(nlp_frames, ignore_index=True), pd.concat(entity_frames, ignore_index=True),
                   embeddings, model_name)
    return len(embeddings)


def analyze_posts(settings: Settings, run_id: str, progress: Progress | None = None,
                  runner: BatchRunner | None = None) -> dict[str, Any]:
    """Process every pending post; returns counts and throughput.

    ``runner`` lets a caller bring already started workers (the benchmark does, to time warm
    workers against a warm encoder); by default workers are started here when worth it.
    """
    log = run_logger()
    started = time.monotonic()
    model_name = embed.model_version()
    spacy_model, entities = settings.analysis.spacy_model, settings.analysis.entities
    con = open_warehouse(settings.warehouse_path)
    done = embedded = workers = 0
    try:
        total = count_pending(con, model_name)
        workers = runner.workers if runner else worker_count(settings.analysis.workers, total)
        chunk_size = settings.analysis.batch_size * max(1, workers)
        if progress:
            progress(0, total)
        if total:
            log.info("analysing %d posts (%s)", total, f"{workers} worker processes" if workers else "in process")
        in_flight: deque[tuple[list[pd.DataFrame], list[Future[AnalysisResult]]]] = deque()
        with (nullcontext(runner) if runner else BatchRunner(workers, spacy_model, entities)) as runner:
            while True:
                while len(in_flight) < (CHUNKS_IN_FLIGHT if workers else 1):
                    busy = [pid for parts, _ in in_flight for part in parts for pid in part.post_id]
                    chunk = pending_posts(con, model_name, chunk_size, exclude=busy)
                    if chunk.empty:
                        break
                    parts = _split(chunk, workers)
                    in_flight.append((parts, [runner.submit(_batch(part, settings.analysis)) for part in parts]))
                if not in_flight:
                    break
                parts, futures = in_flight.popleft()
                try:
                    results = [f.result() for f in futures]
                except BrokenProcessPool as exc:
                    raise RuntimeError(f"analyze: a worker process died ({exc}); the {done} posts analysed so "
                                       "far are stored, re-run analyze to continue (fewer [analysis] workers "
                                       "use less memory)") from exc
                embedded += _store_chunk(con, parts, results, model_name)
                done += sum(len(part) for part in parts)
                log.info("analysed %d/%d posts (%.0f posts/s)", done, total, done / (time.monotonic() - started))
                if progress:
                    progress(done, total)
    finally:
        con.close()
    seconds = time.monotonic() - started
    stats = {"posts": done, "embedded": embedded, "workers": workers,
             "encoder_precision": embed.resolve_precision(settings.analysis.encoder_precision),
             "seconds": round(seconds, 2),
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
