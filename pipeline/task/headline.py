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
    positive clip (of positive weight).

    Only the thresholds at a positive clip's score move the recall, so for each class the clips are binned once by
    the highest such threshold they reach (a sparse [thresholds, clips] one-hot), and every weighting's counts at
    every threshold come from one sparse product and a cumulative sum: no sort of the weights per class."""
    from scipy import sparse

    single = weights is None
    w = np.ones((len(scores), 1)) if single else np.ascontiguousarray(np.asarray(weights, dtype=np.float64).T)
    out = np.full((w.shape[1], scores.shape[1]), np.nan)
    n = len(scores)
    for c in range(scores.shape[1]):
        positive = np.flatnonzero(labels[:, c] > 0)
        if not len(positive):
            continue
        s = scores[:, c]
        thresholds = -np.unique(-s[positive])               # the positives' distinct scores, descending
        bin_of = np.searchsorted(-thresholds, -s, side="left")  # the first threshold a clip's score reaches
        reached = bin_of < len(thresholds)
        clips = sparse.csr_matrix((np.ones(reached.sum()), (bin_of[reached], np.flatnonzero(reached))),
                                  shape=(len(thresholds), n))
        hits = sparse.csr_matrix((np.ones(len(positive)), (bin_of[positive], positive)), shape=(len(thresholds), n))
        step = hits @ w                                     # [thresholds, R]: positive weight added at each
        tps, seen = np.cumsum(step, axis=0), np.cumsum(clips @ w, axis=0)
        precision = np.divide(tps, seen, out=np.zeros_like(tps), where=seen > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = (step * precision).sum(axis=0) / tps[-1]
        out[:, c] = np.where(tps[-1] > 0, ap, np.nan)
    return out[0] if single else out


def mean_ap(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """mAP over the classes with a positive clip (NaN if none has); with weights [R, clips], one per weighting."""
    per_class = np.atleast_2d(average_precision(scores, labels, weights))
    scored = np.isfinite(per_class)
    sums = np.where(scored, per_class, 0.0).sum(axis=1)
    means = np.where(scored.any(axis=1), sums / np.maximum(scored.sum(axis=1), 1), np.nan)
    return float(means[0]) if weights is None else means
