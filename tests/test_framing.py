"""The framing and stance classifier, with the real MiniLM encoder (loads offline from the
packaged model) and a real DuckDB warehouse built from the demo corpus plus a few extra posts."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

DEV_SET = PROJECT_ROOT.parent / "shared" / "framings" / "dev.jsonl"
# Measured on shared/framings/dev.jsonl with the model trained on the project's own data only
# (demo corpus + written sets + codebook): framing macro-F1 0.679, stance macro-F1 0.549.
# The floors leave room for numeric drift and small label edits.
DEV_FRAMING_MACRO_F1_FLOOR = 0.62
DEV_STANCE_MACRO_F1_FLOOR = 0.49
# Grouped (by thread) cross-validation on the project's labels, measured 0.840 and 0.750.
CV_FRAMING_MACRO_F1_FLOOR = 0.78
CV_STANCE_MACRO_F1_FLOOR = 0.69
def _demo_label_files() -> list[Path]:
    import tomllib

    config = tomllib.loads((PROJECT_ROOT / "config" / "demo.toml").read_text(encoding="utf-8"))
    return [PROJECT_ROOT / name for name in config["analysis"]["labels"]]


LABEL_FILES = _demo_label_files()


def _label_counts() -> tuple[int, int]:
    """(labelled posts, threads) in the shipped label files; written threads are per file."""
    posts, threads = 0, set()
    for path in LABEL_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                posts += 1
                threads.add((path.stem, row.get("thread") or row.get("thread_id")))
    return posts, len(threads)

WEST = ("Honestly our banks, insurers and landlords already score us with numbers we can't see or appeal. "
        "The West has its own social credit system, it just calls it a FICO score.")
EXTRA_POSTS = [
    {"id": "x1", "thread_id": "x1", "text": WEST},
    {"id": "x2", "thread_id": "x1", "parent_id": "x1", "text": "exactly."},
    {"id": "x3", "thread_id": "x3", "text": "Every outlet ran the same scary story this week with the same stock "
                                            "photo of CCTV cameras. Clickbait; the facts have been known for years."},
    {"id": "x4", "thread_id": "x3", "parent_id": "x3",
     "text": "And there is no single national score, just local pilots and court blacklists the press glued together."},
    {"id": "x5", "thread_id": "x5", "text": "Does anyone know a good book about how the court blacklists work legally?"},
    {"id": "x6", "thread_id": "x6", "text": "Beijing wants foreigners to believe it sees everything. The glossy "
                                            "demos shown to visiting journalists are propaganda."},
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Models and text vectors go to a temporary cache (never the repository or the user's)."""
    folder = tmp_path_factory.mktemp("framewatch-cache")
    before = os.environ.get("FRAMEWATCH_CACHE_DIR")
    os.environ["FRAMEWATCH_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("FRAMEWATCH_CACHE_DIR", None)
    else:
        os.environ["FRAMEWATCH_CACHE_DIR"] = before


def _copy_config(root: Path, extra_source: bool) -> Path:
    shutil.copytree(PROJECT_ROOT / "config", root / "config")
    config = root / "config" / "demo.toml"
    text = config.read_text().replace('path = "data/framewatch.duckdb"', f'path = "{root / "wh.duckdb"}"')
    text = text.replace('out_dir = "reports_out"', f'out_dir = "{root / "reports"}"')
    if extra_source:
        lines = [json.dumps({**post, "author": "@someone", "created_at": f"2024-03-0{n + 1}T10:00:00+00:00",
                             "platform": "forum", "site": "extra.example", "lang": "en"})
                 for n, post in enumerate(EXTRA_POSTS)]
        (root / "config" / "demo" / "extra.jsonl").write_text("\n".join(lines) + "\n")
        text += '\n[[sources]]\nname = "extra"\ntype = "jsonl"\npath = "config/demo/extra.jsonl"\n'
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def project(tmp_path_factory, cache_dir):
    """Demo corpus + extra posts collected and analysed (spaCy + MiniLM) into a fresh warehouse."""
    from flows.analyze import analyze_posts
    from flows.collect import collect_one
    from framewatch.config import load_settings

    root = tmp_path_factory.mktemp("framing-project")
    config = _copy_config(root, extra_source=True)
    settings = load_settings(config)
    collect_one(settings, "seed-threads", "t-collect")
    collect_one(settings, "extra", "t-collect")
    analyze_posts(settings, "t-analyze")
    return config


@pytest.fixture(scope="module")
def trained(cache_dir):
    """The model trained from the shipped files only (no warehouse), as ``classify`` does."""
    from flows.framing_step import codebook_for, trained_model
    from framewatch.config import load_settings

    settings = load_settings(PROJECT_ROOT / "config" / "demo.toml")
    codebook = codebook_for(settings)
    result, tset = trained_model(settings, codebook, None)
    return settings, codebook, result.model, tset


def _cli():
    from framewatch.cli_framing import _standalone

    return _standalone()


def _predict(model, texts, parents):
    from framewatch.cli_framing import _predict_texts

    return _predict_texts(model, texts, parents)


# --------------------------------------------------------------------------- codebook

def test_codebook_validation_error_names_the_key(tmp_path):
    from nlp.codebook import CodebookError, load_codebook

    data = (PROJECT_ROOT / "config" / "framings" / "social_credit.toml").read_text()
    bad = data.replace('key = "pr_stunt"', 'key = "PR stunt"', 1)
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    with pytest.raises(CodebookError) as err:
        load_codebook(path)
    assert "framings[1] (PR stunt).key" in str(err.value)
    assert str(path) in str(err.value)

    missing = data.replace('[stance.doubts]', '[stance.doubtful]')
    path.write_text(missing)
    with pytest.raises(CodebookError, match=r"stance: .*doubtful"):
        load_codebook(path)


def test_bad_codebook_makes_classify_exit_2(tmp_path):
    config = _copy_config(tmp_path, extra_source=False)
    book = tmp_path / "config" / "framings" / "social_credit.toml"
    book.write_text(book.read_text().replace('definition = """\nThe system, or the way', 'explanation = """\nThe system, or the way'))
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "hello"}\n')
    result = CliRunner().invoke(_cli(), ["classify", "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
                                         "--config", str(config)])
    assert result.exit_code == 2
    assert "framings[1] (pr_stunt).definition" in result.output.replace("\n", "")


# --------------------------------------------------------------------------- model

def test_same_labels_give_same_model_and_scores(trained, tmp_path):
    from nlp import embed
    from nlp.framing import FramingModel, TextVectors, inputs_for, model_version

    settings, codebook, model, tset = trained
    again = model_version(codebook, tset.items, embed.model_version())
    assert again == model.version
    vectors = TextVectors(embed.model_version())
    refit = FramingModel.fit(codebook, tset.items, inputs_for(tset.items, vectors), again, vectors,
                             embed.model_version())
    texts = ["Our credit bureaus do the same thing.", "The press hypes this for clicks.", "No idea."]
    a = _predict(model, texts, [None] * 3)
    b = _predict(refit, texts, [None] * 3)
    assert np.array_equal(a.framing_scores, b.framing_scores)
    assert np.array_equal(a.stance_scores, b.stance_scores)
    assert refit.card["cv"] == model.card["cv"]
    # A different label set is a different model.
    changed = list(tset.items)
    changed[0] = dataclasses.replace(changed[0], stance="neutral" if changed[0].stance != "neutral" else "affirms")
    assert model_version(codebook, changed, embed.model_version()) != model.version


def test_reply_is_read_with_its_parent(trained):
    settings, codebook, model, _ = trained
    west = codebook.framing_keys.index("west_same")
    pred = _predict(model, ["exactly.", "exactly.", "Exactly.", "same here tbh"],
                    [None, WEST, "Does anyone know a good book about the court blacklists?", WEST])
    assert pred.framing_scores[1, west] > pred.framing_scores[0, west] + 0.2
    framings = pred.framings(codebook.framing_keys)
    assert framings[0] == [] and framings[2] == []  # alone, or under a neutral question: nothing
    assert "west_same" in framings[1] and "west_same" in framings[3]


def test_model_card_has_grouped_cv_figures(trained):
    _, codebook, model, _ = trained
    cv = model.card["cv"]
    n_posts, n_threads = _label_counts()
    assert cv["n_groups"] == n_threads and cv["folds"] == 10
    assert set(cv["framings"]["per_framing"]) == set(codebook.framing_keys)
    for figures in cv["framings"]["per_framing"].values():
        assert {"precision", "recall", "f1", "kappa", "support"} <= set(figures)
    assert 0 <= cv["stance"]["macro_f1"] <= 1 and "kappa" in cv["stance"]
    assert model.card["n_labels"] == n_posts and model.card["n_written_labels"] == n_posts - 60
    assert cv["framings"]["macro_f1"] >= CV_FRAMING_MACRO_F1_FLOOR, cv["framings"]
    assert cv["stance"]["macro_f1"] >= CV_STANCE_MACRO_F1_FLOOR, cv["stance"]
    assert set(model.thresholds) == set(codebook.framing_keys)
    assert all(0.2 <= t <= 0.8 for t in model.thresholds.values())


def test_written_labels_are_self_contained_and_grouped(trained):
    """The written set's lines carry their text (and a reply's parent) and group by thread."""
    _, codebook, _, tset = trained
    written = [i for i in tset.items if i.origin == "written"]
    assert len(written) == _label_counts()[0] - 60
    assert all(i.group.split(":")[0] in {p.stem for p in LABEL_FILES} for i in written)
    assert sum(1 for i in written if i.parent_text) >= 60
    assert not tset.problems


# --------------------------------------------------------------------------- CLI

def test_classify_cli_round_trip(trained, tmp_path):
    settings, codebook, model, _ = trained
    config = _copy_config(tmp_path, extra_source=False)  # no warehouse file exists here
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"id": "1", "text": WEST, "platform": "forum"},
        {"id": "2", "text": "exactly.", "parent_text": WEST},
        {"id": "3", "text": "<p>Every article about this uses the <b>same</b> stock photo. Fear gets clicks.</p>"},
    ]) + "\n")
    dest = tmp_path / "out" / "o.jsonl"
    result = CliRunner().invoke(_cli(), ["classify", "--input", str(src), "--output", str(dest), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "cached model" in result.output  # the same training data as the fixture's model
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    for row in rows:
        assert set(row["scores"]) == set(codebook.framing_keys)
        assert set(row["stance_scores"]) == set(codebook.stance_labels)
        assert row["stance"] in codebook.stance_labels
        assert set(row["framings"]) <= set(codebook.framing_keys)
        assert abs(sum(row["stance_scores"].values()) - 1) < 1e-3
        assert row["framings"] == [k for k in codebook.framing_keys if row["scores"][k] >= model.thresholds[k]]
    assert "west_same" in rows[0]["framings"]


def test_eval_cli_prints_metrics(trained, tmp_path):
    config = _copy_config(tmp_path, extra_source=False)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(r) for r in [
        {"id": "g1", "text": "Our credit bureaus and no-fly lists already rate us, the West is no better.",
         "framings": ["west_same"], "stance": "affirms"},
        {"id": "g2", "text": "Journalists confused a private loyalty app with a state score, and clicks did the rest.",
         "framings": ["media_hype"], "stance": "doubts"},
        {"id": "g3", "text": "The regime stages these demos to look all-seeing.", "framings": ["pr_stunt"],
         "stance": "doubts"},
        {"id": "g4", "text": "What time does the match start?", "framings": [], "stance": "neutral"},
        {"id": "g5", "text": "Millions were barred from trains last year. It is real.", "framings": [],
         "stance": "affirms"},
    ]) + "\n")
    report = tmp_path / "figures.json"
    result = CliRunner().invoke(_cli(), ["eval", "--gold", str(gold), "--config", str(config), "--json", str(report)])
    assert result.exit_code == 0, result.output
    for needle in ("precision", "recall", "west_same", "media_hype", "pr_stunt", "framing macro-F1",
                   "stance macro-F1", "Cohen's kappa"):
        assert needle in result.output
    figures = json.loads(report.read_text())
    assert figures["framings"]["n"] == 5 and figures["stance"]["n"] == 5
    assert set(figures["framings"]["per_framing"]["west_same"]) >= {"precision", "recall", "f1"}
    assert -1 <= figures["stance"]["kappa"] <= 1


# --------------------------------------------------------------------------- warehouse loop

def test_classify_label_import_retrain(project, tmp_path):
    from flows.framing_step import classify_posts
    from framewatch.config import load_settings
    from warehouse.db import connect

    settings = load_settings(project)
    first = classify_posts(settings, "run-1")
    n_posts, n_threads = _label_counts()
    assert first["classified"] == 66 and first["n_labels"] == n_posts
    assert classify_posts(settings, "run-2")["classified"] == 0  # nothing new, cached model

    con = connect(settings.warehouse_path, read_only=True)
    try:
        framing_rows = con.execute("SELECT count(*), count(DISTINCT model_version) FROM post_framings").fetchone()
        assert framing_rows == (66 * 3, 1)
        assert con.execute("SELECT count(*) FROM post_stances").fetchone()[0] == 66 * 3
        assert con.execute("SELECT count(*) FROM post_stances WHERE chosen").fetchone()[0] == 66
        scores = dict(con.execute(
            "SELECT post_id, score FROM post_framings WHERE framing = 'west_same' "
            "AND post_id LIKE 'forum:extra.example:%'").fetchall())
        card = con.execute("SELECT n_labels, cv_groups, is_current, len(cv_framings) FROM model_cards").fetchall()
        assert card == [(n_posts, n_threads, True, 3)]
    finally:
        con.close()
    # Thread context inside the warehouse: "exactly." under a west_same post leans west_same.
    from flows.framing_step import codebook_for, trained_model
    codebook = codebook_for(settings)
    model = trained_model(settings, codebook)[0].model
    alone = _predict(model, ["exactly."], [None]).framing_scores[0, codebook.framing_keys.index("west_same")]
    assert scores["forum:extra.example:x2"] > alone

    # Export the least certain posts (only unlabelled ones: the extra posts).
    exported = tmp_path / "uncertain.csv"
    result = CliRunner().invoke(_cli(), ["label", "export", "--uncertain", "3", "--out", str(exported),
                                         "--config", str(project)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(exported.open()))
    assert len(rows) == 3
    assert all(r["post_id"].startswith("forum:extra.example:") for r in rows)
    assert [float(r["uncertainty"]) for r in rows] == sorted((float(r["uncertainty"]) for r in rows), reverse=True)
    parents = {r["post_id"]: r["parent_text"] for r in rows}
    if "forum:extra.example:x2" in parents:
        assert parents["forum:extra.example:x2"] == WEST

    # An analyst labels one post (and makes two mistakes) and imports the file.
    target = "forum:extra.example:x5"
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["post_id", "framings", "stance", "annotator"])
        writer.writeheader()
        writer.writerow({"post_id": target, "framings": "media_hype;pr_stunt", "stance": "doubts", "annotator": "ana"})
        writer.writerow({"post_id": "forum:extra.example:x6", "framings": "propaganda", "stance": "doubts"})
        writer.writerow({"post_id": "forum:nowhere:1", "framings": "", "stance": "neutral"})
        writer.writerow({"post_id": "forum:extra.example:x4", "framings": "", "stance": ""})
    result = CliRunner().invoke(_cli(), ["label", "import", str(labels), "--config", str(project)])
    assert result.exit_code == 1  # two rejected lines
    assert "unknown framing 'propaganda'" in result.output
    assert "forum:nowhere:1 is not in the warehouse" in result.output
    assert "stored 1 label(s)" in result.output and "1 row(s) without a stance skipped" in result.output

    before = {k: v for k, v in _post_scores(settings, target).items()}
    second = classify_posts(settings, "run-3")
    assert second["retrained"] and second["model_version"] != first["model_version"]
    assert second["n_analyst_labels"] == 1 and second["n_labels"] == n_posts + 1
    assert second["classified"] == 66
    after = _post_scores(settings, target)
    assert after["media_hype"] > before["media_hype"]
    assert after["pr_stunt"] > before["pr_stunt"]
    assert after["stance:doubts"] > before["stance:doubts"]
    con = connect(settings.warehouse_path, read_only=True)
    try:
        assert con.execute("SELECT DISTINCT model_version FROM post_framings").fetchall() == [(second["model_version"],)]
        assert con.execute("SELECT count(*) FROM model_cards").fetchone()[0] == 2
        assert con.execute("SELECT framings, stance, annotator FROM framing_labels").fetchall() == [
            (["media_hype", "pr_stunt"], "doubts", "ana")]
    finally:
        con.close()


def _post_scores(settings, post_id):
    from warehouse.db import connect

    con = connect(settings.warehouse_path, read_only=True)
    try:
        out = dict(con.execute("SELECT framing, score FROM post_framings WHERE post_id = ?", [post_id]).fetchall())
        out |= {f"stance:{s}": v for s, v in con.execute(
            "SELECT stance, score FROM post_stances WHERE post_id = ?", [post_id]).fetchall()}
        return out
    finally:
        con.close()


# --------------------------------------------------------------------------- generalisation

@pytest.mark.skipif(not DEV_SET.exists(), reason="shared/framings/dev.jsonl is not beside this checkout")
def test_generalises_to_the_dev_set(trained, tmp_path):
    """Trained on the project's own data only, scored on discussions from 137 other sites."""
    config = _copy_config(tmp_path, extra_source=False)
    report = tmp_path / "dev.json"
    result = CliRunner().invoke(_cli(), ["eval", "--gold", str(DEV_SET), "--config", str(config), "--json", str(report)])
    assert result.exit_code == 0, result.output
    figures = json.loads(report.read_text())
    assert figures["overlap_with_training"] == 0
    assert figures["framings"]["macro_f1"] >= DEV_FRAMING_MACRO_F1_FLOOR, figures["framings"]
    assert figures["stance"]["macro_f1"] >= DEV_STANCE_MACRO_F1_FLOOR, figures["stance"]
