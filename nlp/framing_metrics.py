"""Agreement figures for framings (multi-label) and stance (one label): the same numbers in the
model card's grouped cross-validation and in ``framewatch eval``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score, precision_recall_fscore_support


def _round(value: float) -> float:
    return round(float(value), 4)


def framing_metrics(keys: Sequence[str], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Per framing precision/recall/F1/kappa/support, and their macro averages."""
    out: dict[str, Any] = {"per_framing": {}}
    f1s, kappas = [], []
    for key in keys:
        y = np.array([key in g for g in gold], dtype=bool)
        p = np.array([key in q for q in predicted], dtype=bool)
        precision, recall, f1, _ = precision_recall_fscore_support(y, p, average="binary", zero_division=0)
        kappa = cohen_kappa_score(y, p) if len(set(y) | set(p)) > 1 else 1.0
        kappa = 0.0 if np.isnan(kappa) else kappa
        out["per_framing"][key] = {
            "precision": _round(precision), "recall": _round(recall), "f1": _round(f1),
            "kappa": _round(kappa), "support": int(y.sum()), "predicted": int(p.sum()),
        }
        f1s.append(f1)
        kappas.append(kappa)
    out["macro_f1"] = _round(np.mean(f1s)) if f1s else 0.0
    out["macro_kappa"] = _round(np.mean(kappas)) if kappas else 0.0
    out["n"] = len(gold)
    return out


def stance_metrics(labels: Sequence[str], gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Macro-F1 over the codebook's stance labels, accuracy, Cohen's kappa and per-label F1."""
    labels = list(labels)
    if not gold:
        return {"macro_f1": 0.0, "kappa": 0.0, "accuracy": 0.0, "per_label": {}, "n": 0}
    present = [label for label in labels if label in set(gold) | set(predicted)]
    f1 = f1_score(gold, predicted, labels=present, average=None, zero_division=0)
    kappa = cohen_kappa_score(gold, predicted, labels=labels)
    kappa = 1.0 if np.isnan(kappa) and list(gold) == list(predicted) else (0.0 if np.isnan(kappa) else kappa)
    per_label = {label: _round(value) for label, value in zip(present, f1)}
    macro = f1_score(gold, predicted, labels=present, average="macro", zero_division=0)
    return {
        "macro_f1": _round(macro),
        "kappa": _round(kappa),
        "accuracy": _round(np.mean([g == p for g, p in zip(gold, predicted)])),
        "per_label": per_label,
        "n": len(gold),
    }
