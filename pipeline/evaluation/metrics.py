"""Evaluation metrics, computed with scikit-learn as the AST, PSLA and EfficientAT code report them.

Single-label: accuracy (top-1), and per class its accuracy (recall) and the confusion counts.
Multi-label: mAP (mean over classes of `average_precision_score`: tied scores form one threshold, so the result
does not depend on the order of the clips), mean ROC-AUC (`roc_auc_score`), d-prime = sqrt(2) * Phi^-1(AUC), and per
class its AP and AUC. A class with no positive (or, for AUC, no negative) test clip has no AP: the means are over
the classes that can be scored, and the result says how many and which could not.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

REPORTED = ("accuracy", "mAP", "mean_auc", "d_prime")  # what the report tabulates, when a metrics file has it


def d_prime(auc: float) -> float:
    return float(np.sqrt(2) * NormalDist().inv_cdf(min(max(auc, 1e-6), 1 - 1e-6)))


def per_class_ap(scores: np.ndarray, labels: np.ndarray) -> list[float | None]:
    return [float(average_precision_score(labels[:, c], scores[:, c])) if labels[:, c].any() else None
            for c in range(labels.shape[1])]


def per_class_auc(scores: np.ndarray, labels: np.ndarray) -> list[float | None]:
    return [float(roc_auc_score(labels[:, c], scores[:, c])) if 0 < labels[:, c].sum() < len(labels) else None
            for c in range(labels.shape[1])]


def compute_metrics(logits: np.ndarray, labels: np.ndarray, multi_label: bool,
                    classes: list[str] | None = None) -> dict:
    """The headline metrics (flat, for `dvc metrics`) plus `per_class` details (kept apart by the evaluate stage)."""
    classes = classes or [str(c) for c in range(labels.shape[1])]
    if not multi_label:
        truth, predicted = labels.argmax(1), logits.argmax(1)
        counts = confusion_matrix(truth, predicted, labels=np.arange(len(classes)))
        totals = counts.sum(axis=1)
        accuracy = [float(counts[c, c] / totals[c]) if totals[c] else None for c in range(len(classes))]
        return {"accuracy": float((truth == predicted).mean()), **_scored(accuracy, classes),
                "per_class": {"accuracy": dict(zip(classes, accuracy)), "confusion": counts.tolist(),
                              "classes": classes}}
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


def headline(metrics: dict) -> tuple[str, float]:
    """The metric a report leads with."""
    key = "accuracy" if "accuracy" in metrics else "mAP"
    return key, metrics[key]


def target_statistics(probs: np.ndarray, labels: np.ndarray, multi_label: bool) -> dict:
    """How much a teacher's targets say beyond the labels: their mean entropy (nats; multi-label: the mean over
    classes of each one's Bernoulli entropy), the mean top-1 probability and the mean probability of the labelled
    classes. Targets near one-hot on the labels (entropy ~0, labelled ~1) teach a student nothing its labels don't."""
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    if multi_label:
        q = np.clip(1 - probs.astype(np.float64), 1e-12, 1.0)
        entropy = -(p * np.log(p) + q * np.log(q)).mean(axis=1)
        labelled = np.array([probs[i, labels[i] > 0].mean() if labels[i].any() else np.nan
                             for i in range(len(probs))])
    else:
        entropy = -(p * np.log(p)).sum(axis=1)
        labelled = probs[np.arange(len(probs)), labels.argmax(axis=1)]
    return {"entropy": float(entropy.mean()), "top1_probability": float(probs.max(axis=1).mean()),
            "labelled_probability": float(np.nanmean(labelled))}
