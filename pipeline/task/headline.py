"""The headline metrics, implemented once: accuracy (single-label) and mAP (multi-label), on the clips as they are or
on weighted clips, many weightings at once.

Weights are how often each clip is counted: a bootstrap resample is a weighting (clip i drawn k times: weight k),
so the report's resamples (pipeline/evaluation/statistics.py) never copy logits, and each class's clips are sorted
by score once for every resample together.

Average precision is scikit-learn's `average_precision_score` (what the AST, PSLA and EfficientAT code report):
clips with tied scores form one threshold, AP = sum over thresholds of (recall step) x precision, precision and
recall counting weighted clips (its `sample_weight`). A class with no positive (weighted) clip has no AP; mAP is
the mean over the classes that have one. tests/test_metrics.py checks both against scikit-learn.
"""
from __future__ import annotations

import numpy as np


def accuracy(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """Top-1 accuracy; with weights [R, clips], one accuracy per weighting [R]."""
    correct = (logits.argmax(1) == labels.argmax(1)).astype(np.float64)
    if weights is None:
        return float(correct.mean())
    return (weights @ correct) / weights.sum(axis=1)


def average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per class AP [classes] (weights None) or [R, classes] (weights [R, clips]); NaN where a class has no
    positive clip (of positive weight)."""
    single = weights is None
    w = np.ones((1, len(scores))) if single else np.asarray(weights, dtype=np.float64)
    out = np.full((len(w), scores.shape[1]), np.nan)
    positive = labels > 0
    for c in range(scores.shape[1]):
        if not positive[:, c].any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        ranked = scores[order, c]
        last = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])  # each tie group's last position
        hits = positive[order, c]
        w_sorted = w[:, order]
        tps = np.cumsum(w_sorted * hits, axis=1)[:, last]         # [R, thresholds]
        seen = np.cumsum(w_sorted, axis=1)[:, last]
        total = tps[:, -1:]
        step = np.diff(tps, axis=1, prepend=0.0)                   # the positives' weight each threshold adds
        precision = np.divide(tps, seen, out=np.zeros_like(tps), where=seen > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = (step * precision).sum(axis=1) / total[:, 0]
        out[:, c] = np.where(total[:, 0] > 0, ap, np.nan)
    return out[0] if single else out


def mean_ap(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """mAP over the classes with a positive clip (NaN if none has); with weights [R, clips], one per weighting."""
    per_class = np.atleast_2d(average_precision(scores, labels, weights))
    scored = np.isfinite(per_class)
    sums = np.where(scored, per_class, 0.0).sum(axis=1)
    means = np.where(scored.any(axis=1), sums / np.maximum(scored.sum(axis=1), 1), np.nan)
    return float(means[0]) if weights is None else means
