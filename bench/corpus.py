"""Generated posts for benchmarks: sentences of the demo corpus recombined into threads.

Texts are realistic in length and vocabulary (drawn from real posts) without copying any
single post; the generator is seeded, so every run measures the same input.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo" / "seed_posts.jsonl"


def sentence_pool() -> list[str]:
    sentences = []
    for line in DEMO.read_text().splitlines():
        text = json.loads(line)["text"]
        sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 20]
    return sentences


def generate(n: int, seed: int = 7, start: datetime | None = None) -> list[dict]:
    rng = random.Random(seed)
    pool = sentence_pool()
    start = start or datetime(2019, 1, 1, tzinfo=timezone.utc)
    posts = []
    for i in range(n):
        thread = i // 20
        root = thread * 20
        parent = None if i == root else str(rng.randrange(root, i))
        words = rng.randint(1, 4)
        posts.append({
            "id": str(i), "thread_id": str(root), "parent_id": parent, "author": f"user{rng.randrange(n // 5 + 1)}",
            "created_at": (start + timedelta(minutes=37 * i)).isoformat(),
            "text": " ".join(rng.choice(pool) for _ in range(words)),
            "platform": rng.choice(["mastodon", "blog", "discourse", "twitter"]), "site": "bench.example",
        })
    return posts


def write_jsonl(posts: list[dict], path: Path) -> Path:
    path.write_text("\n".join(json.dumps(p) for p in posts) + "\n")
    return path
