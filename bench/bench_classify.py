"""Framing classification throughput on stored embeddings, against the raw encoder's.

    .venv/bin/python bench/bench_classify.py [--posts 10000] [--encode 1000]

Builds a throwaway warehouse with ``--posts`` generated posts (a third of them replies) and
their embeddings, then times ``classify_posts`` (read posts + parents' vectors, predict, write
predictions) once the model is trained and cached. The encoder's rate is measured by encoding
``--encode`` of the same generated posts; stored vectors are those encodings reused with a
little noise, so the classifier sees realistic vectors without encoding all posts.
Prints one JSON object. Models and text vectors go to a temporary cache folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("FRAMEWATCH_PSEUDONYM_KEY", "bench")

OPENERS = ["Honestly,", "Look,", "I think", "Funny how", "People forget that", "Reminder:", "Sure, but", "Wow."]
CLAIMS = [
    "our banks and insurers already score everyone with numbers nobody can appeal",
    "the press keeps running the same scary stock photo of CCTV cameras for clicks",
    "Beijing wants the world to believe it can watch 1.4 billion people at once",
    "millions of people were blocked from buying train tickets last year",
    "there is no single national score, only local pilots and court blacklists",
    "Ring doorbells hand footage to the police here without a warrant",
    "this is the most complete surveillance state ever built",
    "the demos shown to foreign journalists look staged to me",
    "the topic comes back every few months and then disappears again",
    "does anyone have a good book on how the blacklists work legally",
]
TAILS = ["", " Pot, meet kettle.", " Terrifying.", " Fear sells.", " Nobody checks.", " Mark my words.", " Just saying."]


def generated_posts(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    posts = []
    for i in range(n):
        text = f"{rng.choice(OPENERS)} {rng.choice(CLAIMS)}.{rng.choice(TAILS)} ({i})"
        reply_to = posts[rng.randrange(len(posts))] if posts and rng.random() < 0.33 else None
        posts.append({
            "post_id": f"bench:gen:{i}", "native_id": str(i), "text": text,
            "parent_id": reply_to["post_id"] if reply_to else None,
            "thread_id": reply_to["thread_id"] if reply_to else f"bench:gen:{i}",
        })
    return posts


def build_warehouse(path: Path, posts: list[dict], vectors, encoder: str) -> None:
    import numpy as np
    import pandas as pd

    from warehouse.db import open_warehouse, transaction

    now = datetime.now(timezone.utc)
    con = open_warehouse(path)
    frame = pd.DataFrame({
        "post_id": [p["post_id"] for p in posts], "native_id": [p["native_id"] for p in posts],
        "thread_id": [p["thread_id"] for p in posts], "parent_id": [p["parent_id"] for p in posts],
        "text": [p["text"] for p in posts],
        "content_hash": [hashlib.sha256(p["text"].encode()).hexdigest()[:24] for p in posts],
    })
    emb = pd.DataFrame({"post_id": frame.post_id, "content_hash": frame.content_hash,
                        "embedding": list(vectors.astype(np.float32))})
    with transaction(con):
        con.register("gen", frame)
        con.execute("INSERT INTO post_store (post_id, platform, site, native_id, source, thread_id, parent_id, "
                    "created_at, lang, text, content, content_hash, collected_at, updated_at) "
                    "SELECT post_id, 'bench', 'gen', native_id, 'bench', thread_id, parent_id, ?, 'en', text, text, "
                    "content_hash, ?, ? FROM gen", [now, now, now])
        con.register("emb", emb)
        con.execute("INSERT INTO post_embeddings SELECT post_id, content_hash, ?, "
                    "CAST(embedding AS FLOAT[384]), ? FROM emb", [encoder, now])
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--encode", type=int, default=1000, help="posts to encode for the encoder's rate")
    args = parser.parse_args()

    import numpy as np

    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        tmp_path = Path(tmp)
        os.environ["FRAMEWATCH_CACHE_DIR"] = str(tmp_path / "cache")
        from flows.framing_step import classify_posts
        from framewatch.config import load_settings
        from nlp import embed

        posts = generated_posts(args.posts)
        embed.load_encoder()
        embed.encode(["warm up"])
        sample = [p["text"] for p in posts[: args.encode]]
        started = time.perf_counter()
        encoded = embed.encode(sample)
        encode_seconds = time.perf_counter() - started

        rng = np.random.default_rng(7)
        vectors = encoded[np.arange(len(posts)) % len(encoded)] + rng.normal(0, 0.01, (len(posts), 384))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

        config = tmp_path / "bench.toml"
        config.write_text(
            f'[warehouse]\npath = "{tmp_path / "wh.duckdb"}"\n\n[analysis]\n'
            f'codebook = "{ROOT / "config/framings/social_credit.toml"}"\n'
            f'labels = ["{ROOT / "config/framings/labels/social_credit_demo.jsonl"}"]\n\n'
            f'[[sources]]\nname = "seed-threads"\ntype = "jsonl"\npath = "{ROOT / "config/demo/seed_posts.jsonl"}"\n'
        )
        settings = load_settings(config)
        build_warehouse(settings.warehouse_path, posts, vectors, embed.model_version())

        # First run trains (and caches) the model; time it apart from classification.
        first = classify_posts(settings, "bench-train")
        from warehouse.db import connect

        con = connect(settings.warehouse_path)
        con.execute("DELETE FROM framing_prediction_store")
        con.execute("DELETE FROM stance_prediction_store")
        con.close()
        started = time.perf_counter()
        stats = classify_posts(settings, "bench-classify")
        classify_seconds = time.perf_counter() - started

    encoder_rate = len(sample) / encode_seconds
    classify_rate = stats["classified"] / classify_seconds
    print(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "posts": stats["classified"],
        "train_seconds": first["train_seconds"],
        "classify_seconds": round(classify_seconds, 2),
        "classify_posts_per_s": round(classify_rate, 1),
        "predict_only_posts_per_s": stats["posts_per_s"],
        "encoder_posts": len(sample),
        "encoder_posts_per_s": round(encoder_rate, 1),
        "classify_to_encoder_ratio": round(classify_rate / encoder_rate, 1),
        "model_version": stats["model_version"],
    }, indent=2))


if __name__ == "__main__":
    main()
