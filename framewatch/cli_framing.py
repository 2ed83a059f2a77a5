"""``framewatch classify``, ``framewatch eval`` and ``framewatch label export|import``.

``classify`` and ``eval`` work on plain JSONL files and need no warehouse: the first call
trains the model from the project's labelled data (and the warehouse's imported labels when a
warehouse exists) and caches it. ``label`` moves labels between analysts and the warehouse.

Exit codes as for every framewatch command: 0 fine, 1 finished with rejected lines, 2 a
problem to fix first (config, codebook, missing file, no warehouse or model yet).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from framewatch.jsonl import read_jsonl
from framewatch.config import DEFAULT_CONFIG, ConfigError, Settings, load_settings

out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Config file (TOML).")


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(config: Path) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        _fail(str(exc), 2)
        raise


def _codebook(settings: Settings):
    from flows.framing_step import codebook_for
    from nlp.codebook import CodebookError

    try:
        return codebook_for(settings)
    except CodebookError as exc:
        _fail(str(exc), 2)
        raise


def _read_jsonl(path: Path, required: tuple[str, ...]) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    if not path.is_file():
        _fail(f"{path}: file not found", 2)
    rows, problems = [], []
    for line_no, row, problem in read_jsonl(path):
        missing = [k for k in required if row.get(k) in (None, "")] if row is not None else []
        if problem or missing:
            problems.append(f"{path}:{line_no}: {problem or 'missing ' + ', '.join(missing)}")
            continue
        rows.append((line_no, row))
    return rows, problems


def _model(settings: Settings, codebook):
    """The trained model (cached or fitted now); uses the warehouse's labels when it can read them."""
    from flows.framing_step import trained_model
    from warehouse.db import connect

    con = None
    if settings.warehouse_path.exists():
        try:
            con = connect(settings.warehouse_path, read_only=True)
        except Exception as exc:  # busy or unreadable: the files alone still give a model
            err.print(f"note: warehouse not readable ({exc}); training on the label files only", highlight=False)
            con = None
    try:
        if con is not None and not _has_tables(con):
            con.close()
            con = None
        try:
            return trained_model(settings, codebook, con)
        except ValueError as exc:
            _fail(str(exc), 2)
    finally:
        if con is not None:
            con.close()


def _has_tables(con) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('framing_label_store', 'post_store')"
    ).fetchone()[0] == 2)


def _predict_texts(model, texts: list[str], parents: list[str | None]):
    """Encode each distinct text once (inputs and parents together), then predict."""
    import numpy as np

    from nlp import embed
    from nlp.framing import Inputs, TextVectors

    vectors = TextVectors(embed.model_version(), persist=False)
    distinct = sorted(set(texts) | {p for p in parents if p})
    table = dict(zip(distinct, vectors(distinct))) if distinct else {}
    own = np.stack([table[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)
    parent = np.stack([table[p] if p else np.zeros(384, dtype=np.float32) for p in parents]) if texts else own
    has_parent = np.array([bool(p) for p in parents], dtype=bool)
    return model.predict(Inputs(own, parent, has_parent, texts, parent_texts=list(parents)))


def _text_field(value: Any) -> str | None:
    if value is None:
        return None
    from nlp.text import html_to_text

    text = html_to_text(str(value))
    return text or None


def classify(
    input: Path = typer.Option(..., "--input", "-i", help="JSONL: id, text, optional parent_text and platform."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL to write: id, framings, scores, stance, stance_scores."),
    config: Path = ConfigOption,
) -> None:
    """Classify posts from a file (no warehouse needed; trains and caches the model on first use)."""
    settings = _settings(config)
    codebook = _codebook(settings)
    rows, problems = _read_jsonl(input, ("id", "text"))
    trained, tset = _model(settings, codebook)
    model = trained.model
    texts = [_text_field(r["text"]) or "" for _, r in rows]
    parents = [_text_field(r.get("parent_text")) for _, r in rows]
    prediction = _predict_texts(model, texts, parents)
    output.parent.mkdir(parents=True, exist_ok=True)
    framings = prediction.framings(model.framing_keys)
    stances = prediction.stances(model.stance_labels)
    with output.open("w", encoding="utf-8") as handle:
        for n, (_, row) in enumerate(rows):
            handle.write(json.dumps({
                "id": row["id"],
                "framings": framings[n],
                "scores": {k: round(float(s), 4) for k, s in zip(model.framing_keys, prediction.framing_scores[n])},
                "stance": stances[n],
                "stance_scores": {k: round(float(s), 4) for k, s in zip(model.stance_labels, prediction.stance_scores[n])},
                "model_version": model.version,
            }, ensure_ascii=False) + "\n")
    for problem in problems:
        err.print(problem, highlight=False, soft_wrap=True)
    err.print(f"classified {len(rows)} post(s) with {model.version} "
              f"({'trained now' if trained.retrained else 'cached model'}) → {output}", highlight=False)
    raise typer.Exit(1 if problems else 0)


def evaluate(
    gold: Path = typer.Option(..., "--gold", "-g", help="JSONL: id, text, framings (list), stance; optional parent_text."),
    config: Path = ConfigOption,
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Score the model against hand-labelled posts: per-framing P/R/F1, macro-F1, stance macro-F1, kappa."""
    from nlp.framing_features import text_key
    from nlp.framing_metrics import framing_metrics, stance_metrics

    settings = _settings(config)
    codebook = _codebook(settings)
    rows, problems = _read_jsonl(gold, ("id", "text", "stance"))
    checked = []
    for line_no, row in rows:
        framings = row.get("framings") or []
        try:
            if not isinstance(framings, list):
                raise ValueError("framings must be a list")
            codebook.check_labels(framings, row["stance"])
        except ValueError as exc:
            problems.append(f"{gold}:{line_no}: {exc}")
            continue
        checked.append(row)
    if not checked:
        for problem in problems:
            err.print(problem, highlight=False, soft_wrap=True)
        _fail(f"{gold}: no usable gold lines", 2)
    trained, tset = _model(settings, codebook)
    model = trained.model
    texts = [_text_field(r["text"]) or "" for r in checked]
    parents = [_text_field(r.get("parent_text")) for r in checked]
    prediction = _predict_texts(model, texts, parents)
    fr = framing_metrics(model.framing_keys, [r.get("framings") or [] for r in checked],
                         prediction.framings(model.framing_keys))
    st = stance_metrics(model.stance_labels, [r["stance"] for r in checked], prediction.stances(model.stance_labels))
    trained_on = {text_key(i.text) for i in tset.items}
    overlap = sum(text_key(t) in trained_on for t in texts)

    table = Table(title=f"{gold.name}: {len(checked)} post(s), model {model.version}")
    for column in ("framing", "precision", "recall", "F1", "kappa", "gold", "predicted"):
        table.add_column(column, justify="left" if column == "framing" else "right")
    for key, m in fr["per_framing"].items():
        table.add_row(key, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", f"{m['kappa']:.3f}",
                      str(m["support"]), str(m["predicted"]))
    out.print(table)
    out.print(f"framing macro-F1: {fr['macro_f1']:.3f}")
    out.print(f"stance macro-F1: {st['macro_f1']:.3f}   Cohen's kappa: {st['kappa']:.3f}   "
              f"accuracy: {st['accuracy']:.3f}   per label: "
              + ", ".join(f"{k} {v:.3f}" for k, v in st["per_label"].items()), highlight=False)
    out.print(f"trained on {model.card.get('n_labels')} labelled post(s) + "
              f"{model.card.get('n_codebook_examples')} codebook example(s)", highlight=False)
    if overlap:
        err.print(f"warning: {overlap} gold text(s) are also training texts; the figures overstate generalisation",
                  highlight=False)
    for problem in problems:
        err.print(problem, highlight=False, soft_wrap=True)
    if json_out:
        json_out.write_text(json.dumps({"gold": str(gold), "model_version": model.version, "framings": fr,
                                        "stance": st, "overlap_with_training": overlap}, indent=2))
    raise typer.Exit(1 if problems else 0)


# --------------------------------------------------------------------------- label sub-app

label_app = typer.Typer(help="Export posts for labelling and import analysts' labels.", no_args_is_help=True)

EXPORT_COLUMNS = ["post_id", "platform", "thread_id", "url", "uncertainty", "predicted_framings",
                  "predicted_stance", "scores", "stance_scores", "text", "parent_text",
                  "framings", "stance", "annotator", "note"]


@label_app.command("export")
def label_export(
    uncertain: int = typer.Option(50, "--uncertain", "-n", min=1, help="How many posts (least certain first)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="CSV to write."),
    config: Path = ConfigOption,
) -> None:
    """Write the posts the current model is least sure of, for labelling.

    Fill in ``stance`` (required: a row without it is not a label) and ``framings`` (keys
    separated by semicolons; empty = none), then ``framewatch label import`` the file.
    """
    from warehouse import framings as store
    from warehouse.db import connect
    from warehouse.errors import WarehouseError

    settings = _settings(config)
    codebook = _codebook(settings)
    try:
        con = connect(settings.warehouse_path, read_only=True)
    except WarehouseError as exc:
        _fail(str(exc), 2)
    try:
        if not _has_tables(con) or store.current_model(con, codebook.name) is None:
            _fail("no framing predictions yet; run `framewatch analyze` first", 2)
        from flows.framing_step import training_set

        labelled = training_set(settings, codebook, con).labelled_ids
        frame = store.uncertain_posts(con, codebook.name, uncertain, exclude=labelled)
    finally:
        con.close()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for row in frame.to_dict("records"):
            writer.writerow({
                **{k: row.get(k) for k in ("post_id", "platform", "thread_id", "url", "uncertainty",
                                           "predicted_stance", "scores", "stance_scores", "text")},
                "parent_text": row.get("parent_text") if isinstance(row.get("parent_text"), str) else "",
                "predicted_framings": ";".join(list(row.get("predicted_framings"))
                                               if row.get("predicted_framings") is not None else []),
                "framings": "", "stance": "", "annotator": "", "note": "",
            })
    err.print(f"wrote {len(frame)} post(s) to {out_path}; fill in stance and framings, then "
              f"`framewatch label import {out_path}`", highlight=False)


def _label_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        _fail(f"{path}: file not found", 2)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append((line_no, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        rows.append((line_no, {"_error": f"invalid JSON ({exc.msg} at column {exc.colno})"}))
        return rows
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if "post_id" not in (reader.fieldnames or []) or "stance" not in (reader.fieldnames or []):
            _fail(f"{path}: the header needs post_id, framings and stance columns", 2)
        return [(reader.line_num, row) for row in reader]


def _framing_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).replace(",", ";").split(";") if v.strip()]


@label_app.command("import")
def label_import(
    file: Path = typer.Argument(..., help="CSV (framings separated by ';') or JSONL with post_id, framings, stance."),
    annotator: Optional[str] = typer.Option(None, "--annotator", "-a", help="Who labelled (if rows do not say)."),
    config: Path = ConfigOption,
) -> None:
    """Store analysts' labels in the warehouse; the next analyze retrains on all labels."""
    import pandas as pd

    from warehouse import framings as store
    from warehouse.db import open_warehouse
    from warehouse.errors import WarehouseError

    settings = _settings(config)
    codebook = _codebook(settings)
    rows = _label_rows(file)
    problems: list[str] = []
    unlabelled = 0
    accepted = []
    for line_no, row in rows:
        if not isinstance(row, dict) or "_error" in row:
            problems.append(f"{file}:{line_no}: {row.get('_error', 'not an object') if isinstance(row, dict) else 'not an object'}")
            continue
        post_id = str(row.get("post_id") or "").strip()
        stance = str(row.get("stance") or "").strip()
        if not post_id:
            problems.append(f"{file}:{line_no}: missing post_id")
            continue
        if not stance:
            unlabelled += 1
            continue
        framings = _framing_list(row.get("framings"))
        try:
            codebook.check_labels(framings, stance)
        except ValueError as exc:
            problems.append(f"{file}:{line_no}: {exc}")
            continue
        accepted.append((line_no, {
            "post_id": post_id, "codebook": codebook.name, "framings": sorted(set(framings)), "stance": stance,
            "annotator": (str(row.get("annotator") or "").strip() or annotator or os.environ.get("USER")),
            "source_file": str(file.resolve()), "note": (str(row.get("note") or "").strip() or None),
        }))
    try:
        con = open_warehouse(settings.warehouse_path)
    except WarehouseError as exc:
        _fail(str(exc), 2)
    try:
        known = store.existing_posts(con, [r["post_id"] for _, r in accepted])
        kept = []
        for line_no, record in accepted:
            if record["post_id"] in known:
                kept.append(record)
            else:
                problems.append(f"{file}:{line_no}: post {record['post_id']} is not in the warehouse")
        stored = store.store_labels(con, pd.DataFrame(kept)) if kept else 0
    finally:
        con.close()
    for problem in problems:
        err.print(problem, highlight=False, soft_wrap=True)
    note = f", {unlabelled} row(s) without a stance skipped" if unlabelled else ""
    err.print(f"stored {stored} label(s) from {file}{note}; the next `framewatch analyze` retrains on all labels",
              highlight=False)
    raise typer.Exit(1 if problems else 0)


def register(app: typer.Typer) -> None:
    """Add classify, eval and the label group to the framewatch command."""
    app.command("classify")(classify)
    app.command("eval")(evaluate)
    app.add_typer(label_app, name="label")


def _standalone() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(app)
    return app


if __name__ == "__main__":  # pragma: no cover - `python -m framewatch.cli_framing eval --gold ...`
    _standalone()(prog_name="framewatch")
