"""Evaluation metrics: accuracy (single-label); mAP, mean ROC-AUC and d-prime (multi-label)."""
from __future__ import annotations

from statistics import NormalDist

import numpy as np


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """AP of one class: the mean of the precision at the rank of each positive clip."""
    if positives.sum() == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Probability that a positive outranks a negative (Mann-Whitney U, ties counted half)."""
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg_rank, counts)
    return float((ranks[positives.astype(bool)].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def d_prime(auc: float) -> float:
    return float(np.sqrt(2) * NormalDist().inv_cdf(min(max(auc, 1e-6), 1 - 1e-6)))


def compute_metrics(logits: np.ndarray, labels: np.ndarray, multi_label: bool) -> dict[str, float]:
    if not multi_label:
        return {"accuracy": float((logits.argmax(1) == labels.argmax(1)).mean())}
    aps = [average_precision(logits[:, c], labels[:, c]) for c in range(labels.shape[1])]
    aucs = [roc_auc(logits[:, c], labels[:, c]) for c in range(labels.shape[1])]
    mean_auc = float(np.nanmean(aucs))
    return {"mAP": float(np.nanmean(aps)), "mean_auc": mean_auc, "d_prime": d_prime(mean_auc)}


def headline(metrics: dict[str, float]) -> tuple[str, float]:
    """The metric a report leads with."""
    key = "accuracy" if "accuracy" in metrics else "mAP"
    return key, metrics[key]
