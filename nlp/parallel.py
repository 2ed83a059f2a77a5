"""Run analysis batches on worker processes, one CPU thread each.

On a 2-core machine MiniLM with two torch threads encodes ~1.75× faster than with one, and
spaCy runs on one thread only. Two single-threaded worker processes that each run spaCy and
the encoder on their own batches keep both cores busy without the two libraries fighting
over them: on 10k posts analyze went from 0.55x to 0.72x the fp32 encoder's posts/s
(bench/bench_analyze.py). Each worker holds its own copy of the models (several hundred MB).

Small runs stay in the calling process: starting a worker costs loading torch, spaCy and
MiniLM again (several seconds), more than a few hundred posts take to analyse.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor

from nlp.batch import AnalysisBatch, AnalysisResult, process_batch

# Below this many pending posts, starting worker processes costs more than it saves.
MIN_POSTS_FOR_WORKERS = 1000


def worker_count(configured: int, pending: int) -> int:
    """How many worker processes to use: 0 means run in this process."""
    cores = os.cpu_count() or 1
    workers = cores if configured <= 0 else configured
    if workers <= 1 or pending < MIN_POSTS_FOR_WORKERS:
        return 0
    return workers


def _init_worker(threads: int, spacy_model: str, entities: bool) -> None:
    """Pin the worker's math libraries to its share of cores and load the models once."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    from nlp import embed, linguistic

    embed.load_encoder()
    linguistic.load_pipeline(spacy_model, entities)


class _InProcess(Executor):
    """Runs each batch when it is submitted; the same interface as a process pool."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller via the future
            future.set_exception(exc)
        return future


class BatchRunner:
    """Submits AnalysisBatches to worker processes (or runs them here when workers == 0)."""

    def __init__(self, workers: int, spacy_model: str, entities: bool = True):
        self.workers = workers
        self._spacy_model = spacy_model
        self._entities = entities
        if workers:
            threads = max(1, (os.cpu_count() or 1) // workers)
            self._executor: Executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(threads, spacy_model, entities),
            )
        else:
            self._executor = _InProcess()

    def submit(self, batch: AnalysisBatch) -> Future[AnalysisResult]:
        return self._executor.submit(process_batch, batch)

    def warm(self) -> None:
        """Start every worker and wait until its models are loaded (benchmarks time warm workers)."""
        empty = AnalysisBatch(nlp_texts=[], declared_langs=[], embed_texts=[], spacy_model=self._spacy_model,
                              entities=self._entities)
        for future in [self.submit(empty) for _ in range(max(1, self.workers))]:
            future.result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
