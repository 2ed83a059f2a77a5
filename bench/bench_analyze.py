"""Analyze throughput against the raw encoder on the same posts and machine.

    .venv/bin/python bench/bench_analyze.py --posts 10000

Prints posts/s of MiniLM alone (encode only, all cores, models loaded) in fp32 (the reference
figure) and at the precision analyze uses (``auto``: bf16 on CPUs with native bf16), of spaCy
alone (one thread), and of analyze end to end (reading from and writing to DuckDB, spaCy +
MiniLM on worker processes already started, like the encoder's model already loaded); the
ratios analyze / fp32 encoder and analyze / encoder at analyze's precision; and separately how
long starting the workers took (a cold run pays it once: add it to the analyze time for the
cold figure).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import generate, write_jsonl  # noqa: E402
from nlp import embed  # noqa: E402  (numpy only; torch loads on first encode)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--no-entities", action="store_true", help="analyse with [analysis] entities = false")
    parser.add_argument("--encoder-sample", type=int, default=0,
                        help="time the raw encoder on the first N posts only (0 = all; for 100k runs)")
    parser.add_argument("--precision", default="auto", choices=embed.PRECISIONS,
                        help="[analysis] encoder_precision for analyze")
    args = parser.parse_args()

    from flows.analyze import analyze_posts
    from flows.collect import collect_one
    from nlp import linguistic
    from nlp.parallel import BatchRunner, worker_count
    from tests.support.settings import make_settings

    posts = generate(args.posts)
    texts = [p["text"] for p in posts]
    precision = embed.resolve_precision(args.precision)
    embed.encode(texts[:32], precision="fp32")  # load the model outside the timings
    embed.encode(texts[:32], precision=precision)
    entities = not args.no_entities
    linguistic.load_pipeline(entities=entities)

    timed = texts[: args.encoder_sample] if args.encoder_sample else texts
    t = time.perf_counter()
    embed.encode(timed, precision="fp32")
    encoder_rate = len(timed) / (time.perf_counter() - t)
    if precision == "fp32":
        same_precision_rate = encoder_rate
    else:
        t = time.perf_counter()
        embed.encode(timed, precision=precision)
        same_precision_rate = len(timed) / (time.perf_counter() - t)

    sample = texts[: min(len(texts), 2000)]
    t = time.perf_counter()
    linguistic.analyse(sample, [None] * len(sample), entities=entities)
    spacy_rate = len(sample) / (time.perf_counter() - t)

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = write_jsonl(posts, folder / "posts.jsonl")
        settings = make_settings(folder, [{"name": "bench", "type": "jsonl", "path": str(data)}],
                                 analysis={"batch_size": 512, "entities": entities,
                                           "encoder_precision": precision})
        collect_one(settings, "bench", "bench")
        workers = worker_count(settings.analysis.workers, len(posts))
        t = time.perf_counter()
        runner = BatchRunner(workers, settings.analysis.spacy_model, entities)
        runner.warm()
        start_s = time.perf_counter() - t
        with runner:
            t = time.perf_counter()
            stats = analyze_posts(settings, "bench", runner=runner)
            analyze_s = time.perf_counter() - t
            analyze_rate = stats["posts"] / analyze_s
            t = time.perf_counter()
            again = analyze_posts(settings, "bench-again", runner=runner)
            noop_s = time.perf_counter() - t

    result = {
        "posts": len(texts),
        "encoder_timed_on_posts": len(timed),
        "entities": entities,
        "encoder_fp32_posts_per_s": round(encoder_rate, 1),
        "analyze_precision": precision,
        f"encoder_{precision}_posts_per_s": round(same_precision_rate, 1),
        "spacy_posts_per_s": round(spacy_rate, 1),
        "analyze_workers": workers,
        "analyze_posts_per_s": round(analyze_rate, 1),
        "ratio_analyze_to_fp32_encoder": round(analyze_rate / encoder_rate, 3),
        f"ratio_analyze_to_{precision}_encoder": round(analyze_rate / same_precision_rate, 3),
        "worker_start_seconds": round(start_s, 1),
        "cold_ratio_including_worker_start": round(stats["posts"] / (analyze_s + start_s) / encoder_rate, 3),
        "second_analyze_posts": again["posts"],
        "second_analyze_seconds": round(noop_s, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
