"""The metrics an evaluation reports, computed as the AST, PSLA and EfficientAT code report them.

Single-label (`classification`): accuracy (top-1), and per class its accuracy (recall) and the confusion counts.
Multi-label (`tagging`): mAP (headline.py: scikit-learn's average precision, tied scores forming one threshold),
mean ROC-AUC (scikit-learn's `roc_auc_score`), d-prime = sqrt(2) * Phi^-1(AUC), and per class its AP and AUC. A class
with no positive (or, for AUC, no negative) test clip has no AP: the means are over the classes that can be scored,
and the result says how many and which could not.

A new metric touches this file alone: computed in `classification` or `tagging`, and named in `REPORTED` beside
them to appear in the report's table (and a model card's). Only the evaluation, the report, the audit and the
export import this file: changing it re-runs the evaluations and the report, no training and no dump.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from . import Task, headline

# scikit-learn is imported where a metric needs it (ROC-AUC): it costs 1.5 s at start-up, per stage.

REPORTED = {"single-label": ("accuracy",), "multi-label": ("mAP", "mean_auc", "d_prime")}  # the report's table
# columns per task (pipeline/task), the headline first


def reported(task: Task) -> tuple[str, ...]:
    """The metrics a report and a model card tabulate for `task`, its headline first."""
    return REPORTED[task.name]


def compute(task: Task, logits: np.ndarray, labels: np.ndarray, classes: list[str] | None = None) -> dict:
    """`task`'s reported metrics (flat, for `dvc metrics`) plus `per_class` details (kept apart by evaluation)."""
    return (tagging if task.multi_label else classification)(logits, labels, classes)


def d_prime(auc: float) -> float:
    return float(np.sqrt(2) * NormalDist().inv_cdf(min(max(auc, 1e-6), 1 - 1e-6)))


def per_class_ap(scores: np.ndarray, labels: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in headline.average_precision(scores, labels)]


def per_class_auc(scores: np.ndarray, labels: np.ndarray) -> list[float | None]:
    from sklearn.metrics import roc_auc_score

    return [float(roc_auc_score(labels[:, c], scores[:, c])) if 0 < labels[:, c].sum() < len(labels) else None
            for c in range(labels.shape[1])]


def classification(logits: np.ndarray, labels: np.ndarray, classes: list[str] | None = None) -> dict:
    classes = classes or [str(c) for c in range(labels.shape[1])]
    truth, predicted = labels.argmax(1), logits.argmax(1)
    n = len(classes)
    counts = np.bincount(truth * n + predicted, minlength=n * n).reshape(n, n)  # [true, predicted], as sklearn's
    totals = counts.sum(axis=1)
    accuracy = [float(counts[c, c] / totals[c]) if totals[c] else None for c in range(len(classes))]
    return {"accuracy": headline.accuracy(logits, labels), **_scored(accuracy, classes),
            "per_class": {"accuracy": dict(zip(classes, accuracy)), "confusion": counts.tolist(), "classes": classes}}


def tagging(logits: np.ndarray, labels: np.ndarray, classes: list[str] | None = None) -> dict:
    classes = classes or [str(c) for c in range(labels.shape[1])]
    aps, aucs = per_class_ap(logits, labels), per_class_auc(logits, labels)
    mean_auc = _mean(aucs)
    return {"mAP": _mean(aps), "mean_auc": mean_auc, "d_prime": d_prime(mean_auc), **_scored(aps, classes),
            "per_class": {"AP": dict(zip(classes, aps)), "AUC": dict(zip(classes, aucs)), "classes": classes}}


def _mean(values: list[float | None]) -> float:
    scored = [v for v in values if v is not None]
    return float(np.mean(scored)) if scored else float("nan")


def _scored(values: list[float | None], classes: list[str]) -> dict:
    unscored = [name for name, v in zip(classes, values) if v is None]
    return {"classes_scored": len(classes) - len(unscored), "classes_unscored": unscored}
