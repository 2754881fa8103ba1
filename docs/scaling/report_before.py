"""The report stage with b083126's bootstrap (before ef76b4d/b876316): every draw copies the drawn rows and recomputes
each model's mAP class by class with scikit-learn (pipeline.task.metrics), 200 resamples a difference, 100 a figure
interval, plain percentiles. Run in a project, in place of `python stages/report.py`, to time the former report
(docs/scaling.md: the report stage before and after, on the 30,000-clip project)."""
import runpy
import sys

import numpy as np

import pipeline.evaluation.figures as figures
import pipeline.evaluation.report as report
import pipeline.evaluation.statistics as statistics
from pipeline.task import metrics

RESAMPLES = {"single-label": 2000, "multi-label": 200}


def score(task, logits, labels):
    if task.multi_label:
        return metrics._mean(metrics.per_class_ap(logits, labels))
    return float((logits.argmax(1) == labels.argmax(1)).mean())


def _clip_draws(pair, task, resamples, rng):
    n = len(pair.labels)
    if not task.multi_label:
        truth = pair.labels.argmax(1)
        change = (pair.a.argmax(1) == truth).astype(np.float64) - (pair.b.argmax(1) == truth)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)
        return counts @ change / n
    out = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(n, size=n)
        out[i] = score(task, pair.a[rows], pair.labels[rows]) - score(task, pair.b[rows], pair.labels[rows])
    return out


def difference(pairs, task, resamples=None, seed=0):
    resamples = resamples or RESAMPLES[task.name]
    rng = np.random.default_rng(seed)
    observed = float(np.mean([score(task, p.a, p.labels) - score(task, p.b, p.labels) for p in pairs]))
    over_runs = len(pairs) >= statistics.MIN_RUNS_RESAMPLED
    draws = np.empty(resamples)
    per_run = [_clip_draws(p, task, resamples, rng) for p in pairs]
    for i in range(resamples):
        runs = rng.integers(len(pairs), size=len(pairs)) if over_runs else np.arange(len(pairs))
        draws[i] = np.mean([per_run[r][i] for r in runs])
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"mean": observed, "ci95_low": float(low), "ci95_high": float(high), "runs": len(pairs),
            "clips": int(sum(len(p.labels) for p in pairs)), "resamples": resamples,
            "over": "test clips and runs" if over_runs else "test clips", "interval": "percentile"}


def interval_of(logits, labels, task, seed=0):
    rng = np.random.default_rng(seed)
    n = len(labels)
    scores = []
    for _ in range(RESAMPLES[task.name] // 2):
        rows = rng.integers(n, size=n)
        scores.append(score(task, logits[rows], labels[rows]))
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


for module in (statistics, report):
    module.difference = difference
for module in (statistics, figures):
    module.interval_of = interval_of
sys.argv = ["stages/report.py"]
runpy.run_path("stages/report.py", run_name="__main__")
