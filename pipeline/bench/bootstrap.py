"""`cmkd bench --section bootstrap`: the report's paired bootstrap of an mAP difference at AudioSet's evaluation shape
against the former way (each draw's rows copied and scored class by class with scikit-learn)."""
from __future__ import annotations

import time

import numpy as np

from .common import Results

BOOTSTRAP_SHAPE = {"tiny": (400, 20, 2), "cpu": (20000, 527, 2), "gpu": (20000, 527, 2)}  # clips, classes, old draws


def multi_label_scores(clips: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two models' logits and long-tailed labels at a tagging set's shape: class c's prior falls as 1 / (c + 1)
    (AudioSet's evaluation set: a few classes on thousands of clips, most on 50 to 100), and the models' scores
    lean toward the labels, one more than the other."""
    rng = np.random.default_rng(seed)
    prior = np.minimum(0.3, 2.0 / (np.arange(classes) + 1.0) + 50.0 / clips)
    labels = (rng.random((clips, classes)) < prior).astype(np.float32)
    a, b = (rng.normal(size=(clips, classes)).astype(np.float32) + skill * labels for skill in (1.5, 1.2))
    return a, b, labels


def bench_bootstrap(size_name: str, results: Results) -> None:
    """The report's paired bootstrap (pipeline/evaluation/statistics.py) of student - baseline mAP on one run, with
    the report's resamples, against the way it was done before: each draw's rows copied and each model's mAP
    recomputed class by class with scikit-learn (timed on a few draws; the same draw gives the same mAP both ways,
    tests/test_report.py)."""
    from sklearn.metrics import average_precision_score

    from ..evaluation.statistics import RESAMPLES, Paired, difference
    from ..task import MultiLabel

    clips, classes, old_draws = BOOTSTRAP_SHAPE[size_name]
    a, b, labels = multi_label_scores(clips, classes)
    task, resamples = MultiLabel(), RESAMPLES["multi-label"]
    shape = f"{clips:,} clips x {classes} classes, one run, two models"
    started = time.perf_counter()
    difference([Paired(a, b, labels)], task)
    weighted = time.perf_counter() - started
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(old_draws):
        rows = rng.integers(clips, size=clips)
        for z in (a, b):
            y, s = labels[rows], z[rows]
            np.mean([average_precision_score(y[:, c], s[:, c]) for c in range(classes) if y[:, c].any()])
    copied = (time.perf_counter() - started) / old_draws
    results.add("bootstrap", "paired difference, weighted draws (this code)", weighted, "s",
                f"{shape}, {resamples} resamples, 95 % interval included")
    results.add("bootstrap", "per draw, weighted draws (this code)", 1000 * weighted / resamples, "ms", shape)
    results.add("bootstrap", "per draw, copied rows + scikit-learn per class (former)", 1000 * copied, "ms",
                f"{shape}, mean of {old_draws} draws")
    results.add("bootstrap", "former / this code, per draw", copied * resamples / weighted, "x", shape)
