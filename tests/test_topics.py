"""Topics: stable ids across nightly runs, determinism, small corpora, timeline.

Real DuckDB files, real BERTopic/UMAP/HDBSCAN, real MiniLM vectors of a generated corpus with
clearly different themes (encoded once per module).
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.sources.base import Batch, PostRecord
from flows.topic_step import topics_task, update_topics
from framewatch.config import load_settings
from nlp.text import html_to_text
from nlp.topics import AdaptiveClusterer, ModelStore, TopicSet, keyword_text, make_label
from tests.support.settings import make_settings
from warehouse.db import connect, open_warehouse
from warehouse.store import store_batch
from warehouse.topics import topics_folder

pytestmark = pytest.mark.slow

# Each theme: (openings, middles, endings, tails); a text picks one of each.
THEMES: dict[str, tuple[list[str], ...]] = {
    "surveillance": (
        ["Facial recognition cameras", "The CCTV network", "Street cameras with face scanning",
         "Police surveillance vans", "Smart lamp posts with cameras", "The video surveillance grid",
         "Camera networks at every crossing"],
        ["now track every pedestrian in", "identify jaywalkers within seconds in", "follow protesters across",
         "log the faces of commuters in", "watch residents day and night in", "recognise faces on the metro in"],
        ["Shanghai", "Shenzhen", "Beijing", "Hangzhou", "Chongqing", "Xinjiang", "the city centre"],
        ["and the footage goes straight to the police.", "with almost no privacy protection.",
         "and facial data is stored indefinitely.", "so the cameras never forget a face.", ""],
    ),
    "finance": (
        ["Banks", "Mortgage lenders", "Alibaba's Sesame Credit", "Online lenders", "Credit card companies",
         "Peer-to-peer lending apps", "Insurance firms"],
        ["check your credit score before approving a loan,", "lower interest rates for people with high scores,",
         "deny mortgages to applicants with low ratings,", "use repayment history to rank borrowers,",
         "raise loan limits for customers who repay on time,", "offer cheaper insurance to good borrowers,"],
        ["which is basically a FICO score.", "just like credit bureaus in America.",
         "based on unpaid debts and bills.", "and the financial rating follows you for years.",
         "so repaying loans matters more than ever."],
        [""],
    ),
    "travel": (
        ["Blacklisted debtors", "People on the dishonest persons list", "Court defaulters",
         "Millions of blacklisted citizens", "Those who ignore court judgments", "Defaulters named by the courts"],
        ["were banned from buying plane tickets", "cannot book high-speed train seats",
         "are stopped at the airport gate", "lose the right to fly", "were refused train tickets",
         "cannot board flights or trains"],
        ["until they pay what the court ordered.", "according to the supreme court figures.",
         "and their names are shown on public screens.", "for as long as the travel ban lasts.",
         "under the court enforcement blacklist."],
        [""],
    ),
    "fiction": (
        ["This is literally the Nosedive episode of Black Mirror", "Sounds like a dystopian novel",
         "Orwell wrote this in 1984", "It is straight out of a science fiction movie",
         "Black Mirror predicted this years ago", "Every dystopian film warned us about this"],
        ["and people still think it is just a TV show.", "where everyone rates each other with stars.",
         "but nobody reads the books anymore.", "and Big Brother is watching.",
         "with the author describing exactly this society.", "and the plot twist is that it is real."],
        ["Fiction becomes reality.", "Great writing though.", "Watch the episode.", "Read the novel.", ""],
        [""],
    ),
    "business": (
        ["Foreign companies", "Every registered firm", "Multinational corporations", "Small businesses",
         "Joint ventures", "Exporters"],
        ["must comply with the corporate social credit rules", "are audited by regulators for tax compliance",
         "get a corporate rating based on environmental permits", "face penalties for breaching regulations",
         "upload licence and customs data to the corporate rating system",
         "lose government contracts after violations"],
        ["according to the European Chamber of Commerce report.", "which affects supply chain partners.",
         "under the enterprise credit information system.", "and compliance costs keep rising.",
         "so lawyers advise firms on regulatory ratings."],
        [""],
    ),
    # Appears only later: must become a new topic at the refit.
    "healthcode": (
        ["The pandemic health code app", "My COVID QR code", "The green health code", "The quarantine tracking app",
         "The epidemic prevention code", "The mandatory health QR app"],
        ["turned red after a PCR test in the neighbourhood,", "blocked me from entering the supermarket,",
         "sent the whole building into quarantine,", "decided whether I could take the subway,",
         "showed yellow because I passed a covid hotspot,", "required a negative nucleic acid test every 48 hours,"],
        ["and lockdown rules changed overnight.", "so I was stuck at home for two weeks.",
         "and the virus testing queues were endless.", "even though I was vaccinated.", "during the Omicron wave."],
        [""],
    ),
}
OLD_THEMES = [t for t in THEMES if t != "healthcode"]


def themed_texts(theme: str, n: int, seed: int = 1) -> list[str]:
    """``n`` distinct texts of one theme (seeded; ~30 % mention "social credit")."""
    rng = random.Random(f"{theme}-{seed}")
    seen: set[str] = set()
    out: list[str] = []
    parts = THEMES[theme]
    if n > np.prod([len(options) for options in parts]):
        raise ValueError(f"theme {theme!r} cannot give {n} distinct texts")
    while len(out) < n:
        text = " ".join(p for p in (rng.choice(options) for options in parts) if p)
        if rng.random() < 0.3:
            text += " Social credit at work."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


BASE, LATER, NEW = 48, 8, 48  # per old theme at first / per old theme later / new theme
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    """post rows (native_id, theme, phase, text, created_at) with MiniLM vectors, encoded once."""
    from nlp.embed import encode

    rows = []
    for theme in OLD_THEMES:
        texts = themed_texts(theme, BASE + LATER)
        for i, text in enumerate(texts):
            phase = "base" if i < BASE else "later"
            day = i * 60 // BASE if phase == "base" else 60 + (i - BASE) * 2
            rows.append((f"{theme}-{i:03d}", theme, phase, text, START + timedelta(days=day, hours=i % 24)))
    for i, text in enumerate(themed_texts("healthcode", NEW)):
        rows.append((f"healthcode-{i:03d}", "healthcode", "new", text, START + timedelta(days=75 + i // 4, hours=i)))
    frame = pd.DataFrame(rows, columns=["native_id", "theme", "phase", "text", "created_at"])
    frame["post_id"] = "test:topics.example:" + frame.native_id
    frame["vector"] = list(encode(frame.text.tolist()))
    return frame


def add_posts(settings, rows: pd.DataFrame) -> None:
    """Store posts the way collectors do and their vectors the way the analyze flow does."""
    from nlp import embed
    from warehouse.analysis import embedding_frame, store_analysis

    con = open_warehouse(settings.warehouse_path)
    try:
        batch = Batch(posts=[
            PostRecord(platform="test", site="topics.example", native_id=r.native_id, content=r.text,
                       created_at=r.created_at.to_pydatetime(), lang="en", thread_native_id=r.native_id)
            for r in rows.itertuples()
        ])
        store_batch(con, source="generated", run_id="gen", batch=batch, author_key=lambda *a: None,
                    to_text=html_to_text)
        hashes = dict(con.execute("SELECT post_id, content_hash FROM post_store").fetchall())
        ids = rows.post_id.tolist()
        store_analysis(con, pd.DataFrame(), pd.DataFrame(),
                       embedding_frame(ids, [hashes[i] for i in ids], np.stack(rows.vector.tolist())),
                       embed.model_version())
    finally:
        con.close()


def query(settings, sql: str) -> pd.DataFrame:
    con = connect(settings.warehouse_path, read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def assignments(settings) -> dict[str, int]:
    return dict(query(settings, "SELECT post_id, topic_id FROM post_topics").itertuples(index=False))


def settings_in(folder: Path, min_posts: int = 30):
    folder.mkdir(parents=True, exist_ok=True)
    return make_settings(folder, analysis={"min_topic_posts": min_posts})


def theme_ids(frame: pd.DataFrame, assigned: dict[str, int]) -> dict[str, int]:
    """The topic most posts of each theme got; asserts themes are ~pure and distinct."""
    result = {}
    for theme, group in frame.groupby("theme"):
        got = Counter(assigned.get(p, -1) for p in group.post_id)
        topic, count = got.most_common(1)[0]
        assert topic >= 0 and count >= 0.9 * len(group), (theme, got)
        result[theme] = topic
    assert len(set(result.values())) == len(result), result
    return result


def test_ids_stay_stable_across_nightly_runs_and_refit(tmp_path, corpus):
    settings = settings_in(tmp_path / "wh")
    base = corpus[corpus.phase == "base"]
    later = corpus[corpus.phase == "later"]
    new = corpus[corpus.phase == "new"]

    # Night 1: first fit.
    add_posts(settings, base)
    first = update_topics(settings, "night-1")
    assert first["action"] == "fit" and first["model_version"] == 1, first
    assigned_1 = assignments(settings)
    ids = theme_ids(base, assigned_1)
    topics_1 = query(settings, "SELECT topic_id, label, keywords, model_version FROM topics ORDER BY topic_id")
    assert sorted(topics_1.topic_id) == sorted(ids.values())
    assert (topics_1.model_version == 1).all()
    assert all(len(k) > 0 for k in topics_1.keywords) and all(topics_1.label.str.len() > 0)
    # Labels come from the theme's words, and English stop words never appear.
    labels = dict(zip(topics_1.topic_id, topics_1.label))
    assert any(w in labels[ids["surveillance"]] for w in ("camera", "surveillance", "facial", "cctv"))
    assert any(w in labels[ids["travel"]] for w in ("travel", "ban", "blacklist", "court", "train", "flight"))
    words = {w for kws in topics_1.keywords for phrase in kws for w in phrase.split()}
    assert not words & {"the", "and", "of", "to", "is", "with"}
    versions = sorted(p.name for p in topics_folder(settings.warehouse_path).iterdir())
    assert versions == ["v0001"]

    # Night 2: a few posts of old themes (below the refit threshold) are assigned, nothing refit.
    add_posts(settings, later)
    second = update_topics(settings, "night-2")
    assert second["action"] == "assign" and second["model_version"] == 1, second
    assert second["n_assigned"] + second["n_outliers"] == len(later)
    assigned_2 = assignments(settings)
    assert {p: assigned_2[p] for p in assigned_1} == assigned_1  # old posts keep their ids
    for theme, group in later.groupby("theme"):
        got = [assigned_2.get(p, -1) for p in group.post_id]
        assert got.count(ids[theme]) >= len(got) - 1 and set(got) <= {ids[theme], -1}, (theme, got)
    assert sorted(p.name for p in topics_folder(settings.warehouse_path).iterdir()) == ["v0001"]

    # Nothing new: nothing to do.
    again = update_topics(settings, "night-2b")
    assert again["action"] == "assign" and again["status"].startswith("up to date"), again

    # Night 3: a new theme pushes the corpus past +25 %: refit, merged into the old model.
    add_posts(settings, new)
    third = update_topics(settings, "night-3")
    assert third["action"] == "refit" and third["model_version"] == 2, third
    assert third["n_new_topics"] >= 1
    assigned_3 = assignments(settings)
    old_posts = pd.concat([base, later]).post_id
    kept = sum(assigned_3.get(p) == assigned_2.get(p) for p in old_posts if assigned_2.get(p) is not None)
    assert kept == sum(1 for p in old_posts if assigned_2.get(p) is not None)  # old posts keep their ids
    new_got = Counter(assigned_3.get(p, -1) for p in new.post_id)
    new_id, count = new_got.most_common(1)[0]
    assert new_id not in set(ids.values()) and new_id > max(ids.values()), new_got
    assert count >= 0.9 * len(new)
    topics_3 = query(settings, "SELECT topic_id, label, keywords, model_version FROM topics ORDER BY topic_id")
    before = topics_1.set_index("topic_id")
    after = topics_3.set_index("topic_id")
    for topic in before.index:  # old ids keep their label and keywords
        assert after.loc[topic, "label"] == before.loc[topic, "label"]
        assert list(after.loc[topic, "keywords"]) == list(before.loc[topic, "keywords"])
        assert after.loc[topic, "model_version"] == 1
    assert after.loc[new_id, "model_version"] == 2
    assert any(w in after.loc[new_id, "label"] for w in ("health", "covid", "quarantine", "qr", "virus", "code"))
    # In the merged model every old topic keeps its exact centroid; the new one is appended.
    store = ModelStore(topics_folder(settings.warehouse_path))
    v1, v2 = store.load(1), store.load(2)
    assert v2.topic_ids[: len(v1.topic_ids)].tolist() == v1.topic_ids.tolist()
    np.testing.assert_allclose(v2.centroids[: len(v1.topic_ids)], v1.centroids, atol=1e-6)
    new_vectors = np.stack(new.vector.tolist())
    assert (v2.similarities(new_vectors).argmax(axis=1) == list(v2.topic_ids).index(new_id)).mean() >= 0.9
    models = query(settings, "SELECT model_version, kind, n_posts FROM topic_model_store ORDER BY 1")
    assert models.kind.tolist() == ["fit", "refit"]
    assert models.n_posts.tolist() == [len(base), len(corpus)]

    # Night 4: copies of posts of the new topic go to the new id without another refit.
    extra = new[[assigned_3.get(p) == new_id for p in new.post_id]].head(6).copy()
    extra["native_id"] = extra.native_id + "-again"
    extra["post_id"] = "test:topics.example:" + extra.native_id
    add_posts(settings, extra)
    fourth = update_topics(settings, "night-4")
    assert fourth["action"] == "assign" and fourth["model_version"] == 2
    assigned_4 = assignments(settings)
    assert [assigned_4.get(p) for p in extra.post_id] == [new_id] * len(extra)


def test_edited_and_deleted_posts(tmp_path, corpus):
    settings = settings_in(tmp_path / "wh")
    base = corpus[corpus.phase == "base"]
    add_posts(settings, base)
    assert update_topics(settings, "n1")["action"] == "fit"
    ids = theme_ids(base, assignments(settings))

    # A surveillance post is edited into a travel post: hidden until its new vector is assigned.
    edited = base[base.theme == "surveillance"].head(1).copy()
    travel = base[base.theme == "travel"].iloc[0]
    edited["text"], edited["vector"] = travel.text + " (edited)", [travel.vector]
    add_posts(settings, edited)
    post = edited.post_id.iloc[0]
    assert post not in assignments(settings)
    result = update_topics(settings, "n2")
    assert result["action"] == "assign" and result["n_assigned"] == 1
    assert assignments(settings)[post] == ids["travel"]

    # A deleted post disappears from post_topics and its row is dropped.
    con = open_warehouse(settings.warehouse_path)
    con.execute("UPDATE post_store SET deleted_at = now(), text = NULL WHERE post_id = ?", [post])
    con.close()
    assert post not in assignments(settings)
    update_topics(settings, "n3")
    assert query(settings, f"SELECT count(*) AS n FROM post_topic_store WHERE post_id = '{post}'").n[0] == 0


def test_fit_is_deterministic(tmp_path, corpus):
    base = corpus[corpus.phase == "base"]
    runs = []
    for name in ("a", "b"):
        settings = settings_in(tmp_path / name)
        add_posts(settings, base)
        result = update_topics(settings, "det")
        assert result["action"] == "fit"
        runs.append((assignments(settings),
                     query(settings, "SELECT topic_id, label, keywords FROM topics ORDER BY topic_id")))
    assert runs[0][0] == runs[1][0]
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])


def test_too_few_posts_stores_nothing(tmp_path, corpus):
    settings = settings_in(tmp_path / "wh", min_posts=30)
    few = corpus[corpus.phase == "base"].groupby("theme").head(4)  # 20 posts
    add_posts(settings, few)
    result = update_topics(settings, "few")
    assert result["status"] == "too few posts (20 < 30)"
    assert result["action"] == "none"
    assert query(settings, "SELECT count(*) AS n FROM topic_store").n[0] == 0
    assert query(settings, "SELECT count(*) AS n FROM post_topic_store").n[0] == 0
    assert query(settings, "SELECT count(*) AS n FROM topic_model_store").n[0] == 0
    assert not topics_folder(settings.warehouse_path).exists()
    # The Prefect task rebuilds everything from the config path.
    again = topics_task.fn(str(tmp_path / "wh" / "framewatch.toml"), "few-task")
    assert again["status"] == "too few posts (20 < 30)" and again["run_id"] == "few-task"


def test_small_corpus_of_75_posts_gives_its_themes(tmp_path, corpus):
    settings = settings_in(tmp_path / "wh", min_posts=30)
    small = corpus[corpus.phase == "base"].groupby("theme").head(15)  # 5 themes x 15
    add_posts(settings, small)
    result = update_topics(settings, "small")
    assert result["action"] == "fit", result
    assigned = assignments(settings)
    ids = {}
    for theme, group in small.groupby("theme"):
        got = Counter(assigned.get(p, -1) for p in group.post_id)
        topic, count = got.most_common(1)[0]
        assert topic >= 0 and count >= 12, (theme, got)
        ids[theme] = topic
    assert len(set(ids.values())) >= 4, ids  # themes are told apart (two may share a topic)


def test_demo_corpus(tmp_path, analyzed_demo):
    """The real demo posts (about 60): a few topics, or the clear message."""
    source = load_settings(analyzed_demo)
    shutil.copy(source.warehouse_path, tmp_path / "wh.duckdb")
    settings = settings_in(tmp_path)
    result = update_topics(settings, "demo")
    if result["action"] == "none":
        assert result["status"].startswith(("too few posts", "no topics found")), result
        return
    assert result["action"] == "fit" and result["n_topics"] >= 2, result
    topics = query(settings, "SELECT * FROM topics")
    assert topics["size"].sum() == result["n_assigned"]
    assert all(topics.label.str.len() > 0)


def test_topic_timeline_counts_match_posts(tmp_path, corpus):
    settings = settings_in(tmp_path / "wh")
    add_posts(settings, corpus[corpus.phase == "base"])
    update_topics(settings, "tl")
    joined = query(settings, "SELECT pt.topic_id, p.created_at FROM post_topics pt JOIN posts p USING (post_id)")
    utc = pd.to_datetime(joined.created_at, utc=True).dt.tz_convert("UTC").dt.tz_localize(None)
    timeline = query(settings, "SELECT * FROM topic_timeline")
    assert list(timeline.columns) == ["period_start", "granularity", "topic_id", "n_posts"]
    starts = {
        "day": utc.dt.normalize(),
        "week": (utc - pd.to_timedelta(utc.dt.weekday, unit="D")).dt.normalize(),
        "month": utc.dt.to_period("M").dt.start_time,
    }
    for granularity, start in starts.items():
        expected = (pd.DataFrame({"period_start": start.dt.date, "topic_id": joined.topic_id})
                    .value_counts().rename("n_posts").reset_index()
                    .sort_values(["period_start", "topic_id"]).reset_index(drop=True))
        got = (timeline[timeline.granularity == granularity]
               .assign(period_start=lambda f: pd.to_datetime(f.period_start).dt.date)[
                   ["period_start", "topic_id", "n_posts"]]
               .sort_values(["period_start", "topic_id"]).reset_index(drop=True))
        assert got.n_posts.sum() == len(joined)
        pd.testing.assert_frame_equal(got.astype({"topic_id": "int64", "n_posts": "int64"}),
                                      expected.astype({"topic_id": "int64", "n_posts": "int64"}))
    sizes = query(settings, "SELECT topic_id, size FROM topics")
    month = timeline[timeline.granularity == "month"].groupby("topic_id").n_posts.sum()
    assert dict(zip(sizes.topic_id, sizes["size"])) == month.to_dict()


# ------------------------------------------------------------------------ building blocks (fast)


def test_small_corpus_fallback_and_no_structure():
    rng = np.random.default_rng(0)
    blobs = np.vstack([rng.normal(centre, 0.3, size=(9, 5)) for centre in (0.0, 5.0, -5.0)])
    fitted = AdaptiveClusterer(min_cluster_size=10).fit(blobs)  # HDBSCAN cannot: blobs < 10
    assert fitted.method.startswith("ward(k=3")
    assert [len(set(fitted.labels_[i:i + 9])) for i in (0, 9, 18)] == [1, 1, 1]
    noise = AdaptiveClusterer(min_cluster_size=10).fit(rng.normal(size=(40, 5)))
    assert noise.method.startswith("hdbscan") and set(noise.labels_) == {-1}  # no forced topics


def test_nearest_centroid_assignment_respects_floors():
    topics = TopicSet(version=1, topic_ids=np.array([0, 3]), centroids=np.eye(3)[:2].astype(np.float32),
                      floors=np.array([0.5, 0.9]), labels={0: "a", 3: "b"}, keywords={0: [], 3: []},
                      created={0: 1, 3: 1})
    got, sims = topics.assign(np.array([[1.0, 0.1, 0.0], [0.6, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert got.tolist() == [0, -1, -1]  # second: nearest is 3 but below its floor; third: nothing near
    assert sims[0] > 0.99 and 0 <= sims.min() and sims.max() <= 1


def test_labels_and_keyword_text():
    text = "See https://x.org/a?b=1 @someone@mastodon.social China’s plan, don't"
    assert keyword_text(text) == "See China plan, dont"
    keywords = ["radar cameras", "cameras", "tracking", "radar", "police"]
    assert make_label(keywords) == "radar cameras, tracking, police"  # no word twice
    generic = frozenset({"social", "credit"})
    keywords = ["social credit", "credit score", "banks", "loans"]
    assert make_label(keywords, generic=generic) == "credit score, banks, loans"
    assert make_label(["social credit"], generic=generic) == "social credit"
    assert make_label([]) == "(no keywords)"
