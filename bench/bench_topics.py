"""Topic model cost: BERTopic fit time and peak memory on 10k posts, nightly assignment, refit.

    .venv/bin/python bench/bench_topics.py                 # 10k posts, synthetic embeddings
    .venv/bin/python bench/bench_topics.py --encode        # real MiniLM vectors (slow on CPU)
    .venv/bin/python bench/bench_topics.py --tracemalloc   # adds a traced fit (Python heap peak)

Embeddings: by default synthetic -- ``--clusters`` random unit centres in 384 dimensions, each
post a centre plus Gaussian noise, re-normalised (cosine to its centre ~0.65, like MiniLM posts of
one theme). Texts (for c-TF-IDF and keywords) come from the themed generator of the tests, one
theme per cluster plus a cluster-specific word. Encoding 10k posts with MiniLM takes minutes on a
laptop CPU and measures the encoder, not the topic model; ``--encode`` does it anyway.

Prints JSON: fit seconds (first fit in the process, which includes numba JIT compilation, and a
second, warm fit), peak RSS before/after the fit (``resource.getrusage``), end-to-end
``update_topics`` through DuckDB (fit, nightly assignment of new posts, refit + merge).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from nlp.topics import configure_numba_cache  # noqa: E402  (sets NUMBA_CACHE_DIR first)

configure_numba_cache()


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def synthetic(n: int, clusters: int, seed: int = 11, dim: int = 384) -> tuple[list[str], np.ndarray, np.ndarray]:
    from tests.test_topics import THEMES, themed_texts

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, size=n)
    noise = rng.normal(scale=1.15 / np.sqrt(dim), size=(n, dim))
    vectors = centres[labels] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    themes = list(THEMES)
    per_theme = {t: themed_texts(t, 150, seed=seed) for t in themes}
    pick = random.Random(seed)
    texts = [f"{pick.choice(per_theme[themes[c % len(themes)]])} cluster{c:02d}word" for c in labels]
    return texts, vectors.astype(np.float32), labels


def warehouse_posts(settings, texts: list[str], vectors: np.ndarray, offset: int = 0) -> None:
    """Store posts and their vectors the way the collect and analyze flows do."""
    import pandas as pd

    from flows.sources.base import Batch, PostRecord
    from nlp import embed
    from nlp.text import html_to_text
    from warehouse.analysis import embedding_frame, store_analysis
    from warehouse.db import open_warehouse
    from warehouse.store import store_batch

    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    ids = [f"bench:topics.example:{offset + i}" for i in range(len(texts))]
    con = open_warehouse(settings.warehouse_path)
    try:
        posts = [PostRecord(platform="bench", site="topics.example", native_id=str(offset + i), content=t,
                            created_at=start + timedelta(minutes=53 * (offset + i)), lang="en")
                 for i, t in enumerate(texts)]
        store_batch(con, source="bench", run_id="bench", batch=Batch(posts=posts), author_key=lambda *a: None,
                    to_text=html_to_text)
        hashes = dict(con.execute("SELECT post_id, content_hash FROM post_store").fetchall())
        store_analysis(con, pd.DataFrame(), pd.DataFrame(),
                       embedding_frame(ids, [hashes[i] for i in ids], vectors), embed.model_version())
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=30)
    parser.add_argument("--new", type=int, default=1_000, help="posts added for the nightly assignment")
    parser.add_argument("--encode", action="store_true", help="real MiniLM vectors instead of synthetic ones")
    parser.add_argument("--tracemalloc", action="store_true", help="one more fit under tracemalloc")
    args = parser.parse_args()

    from flows.topic_step import update_topics
    from nlp import embed
    from nlp.topics import TopicParams, fit_new
    from tests.support.settings import make_settings

    total = args.posts + 2 * args.new
    texts, vectors, truth = synthetic(total, args.clusters)
    embeddings = "synthetic (cluster centres + noise)"
    embed.encode(["warm up"])  # the encoder (used for candidate keywords) loads outside the timings
    if args.encode:
        t = time.perf_counter()
        vectors = embed.encode(texts)
        embeddings = f"MiniLM ({time.perf_counter() - t:.0f} s to encode)"
    base_texts, base_vectors = texts[: args.posts], vectors[: args.posts]
    ids = [str(i) for i in range(args.posts)]
    result: dict = {"posts": args.posts, "clusters": args.clusters, "embeddings": embeddings,
                    "rss_mb_before_fit": round(maxrss_mb(), 1)}

    t = time.perf_counter()
    first = fit_new(ids, base_texts, base_vectors, version=1)
    result["fit_s_first_in_process"] = round(time.perf_counter() - t, 2)
    result["rss_mb_peak_after_fit"] = round(maxrss_mb(), 1)
    t = time.perf_counter()
    second = fit_new(ids, base_texts, base_vectors, version=1)
    result["fit_s_warm"] = round(time.perf_counter() - t, 2)
    result["deterministic"] = bool(np.array_equal(first.assigned, second.assigned))
    result["topics_found"] = int(len(first.topics.topic_ids))
    result["clusterer"] = first.stats["clusterer"]
    result["outliers"] = int((first.assigned == -1).sum())
    if not args.encode:  # how well topics recover the generating clusters (1.0 = perfectly)
        from sklearn.metrics import adjusted_rand_score

        result["adjusted_rand_vs_clusters"] = round(float(adjusted_rand_score(truth[: args.posts], first.assigned)), 3)
    if args.tracemalloc:
        tracemalloc.start()
        fit_new(ids, base_texts, base_vectors, version=1, params=TopicParams())
        result["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()

    with tempfile.TemporaryDirectory() as folder:
        settings = make_settings(Path(folder), analysis={"min_topic_posts": 30})
        warehouse_posts(settings, base_texts, base_vectors)
        fit = update_topics(settings, "bench-fit")
        result["update_fit_s"] = fit["seconds"]
        lo, hi = args.posts, args.posts + args.new
        warehouse_posts(settings, texts[lo:hi], vectors[lo:hi], offset=lo)
        nightly = update_topics(settings, "bench-nightly")
        result["update_assign_s"] = nightly["seconds"]
        result["update_assign_posts"] = nightly["n_assigned"] + nightly["n_outliers"]
        lo, hi = hi, hi + args.new
        warehouse_posts(settings, texts[lo:hi], vectors[lo:hi], offset=lo)
        refit = update_topics(settings, "bench-refit", refit=True)
        result["update_refit_s"] = refit["seconds"]
        result["refit_posts"] = refit["n_posts"]
        result["refit_new_topics"] = refit["n_new_topics"]
    result["rss_mb_peak_end"] = round(maxrss_mb(), 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
