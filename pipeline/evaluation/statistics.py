"""How sure a difference between two models is: a paired bootstrap over the test clips, and over the runs.

A test set of a few hundred clips is itself a sample: two models one clip apart on 80 clips may have swapped ranks
on another 80. A t-interval over the runs alone misses that (two runs that happen to be equal give it zero width),
so the interval of a difference (student - baseline, student - teacher) is resampled:

- within each run, the test clips are drawn with replacement, the same clips for both models (paired: a clip hard
  for one is usually hard for the other), and the headline metric of each model recomputed on the draw (accuracy:
  the share of correct clips; mAP: per class average precision over the drawn clips);
- with 3 or more runs, the runs too are drawn with replacement before their clips, so the interval also holds the
  spread between runs and seeds (a fold's difficulty, a seed's luck); with fewer, the interval is the test clips'
  sampling noise alone, and the report says so.

The difference of the mean over runs is taken on each of `resamples` draws; the 95 % interval is the 2.5 and
97.5 percentiles of those (the percentile bootstrap), and a difference is beyond the noise only when that interval
excludes 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..task import Task

RESAMPLES = {"single-label": 2000, "multi-label": 200}  # mAP is recomputed class by class on each draw
MIN_RUNS_RESAMPLED = 3


@dataclass(frozen=True)
class Paired:
    """One run's test clips scored by two models: a minus b."""
    a: np.ndarray       # logits [clips, classes]
    b: np.ndarray
    labels: np.ndarray  # [clips, classes]


def difference(pairs: list[Paired], task: Task, resamples: int | None = None, seed: int = 0) -> dict:
    """The mean over runs of metric(a) - metric(b), with its 95 % bootstrap interval (see the module docstring)."""
    if not pairs:
        raise ValueError("no runs to compare")
    resamples = resamples or RESAMPLES[task.name]
    rng = np.random.default_rng(seed)
    observed = float(np.mean([task.score(p.a, p.labels) - task.score(p.b, p.labels) for p in pairs]))
    over_runs = len(pairs) >= MIN_RUNS_RESAMPLED
    draws = np.empty(resamples)
    per_run = [_clip_draws(p, task, resamples, rng) for p in pairs]  # [runs][resamples]
    for i in range(resamples):
        runs = rng.integers(len(pairs), size=len(pairs)) if over_runs else np.arange(len(pairs))
        draws[i] = np.mean([per_run[r][i] for r in runs])
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"mean": observed, "ci95_low": float(low), "ci95_high": float(high), "runs": len(pairs),
            "clips": int(sum(len(p.labels) for p in pairs)), "resamples": resamples,
            "over": "test clips and runs" if over_runs else "test clips"}


def _clip_draws(pair: Paired, task: Task, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """metric(a) - metric(b) on `resamples` draws of the run's clips with replacement (the same draw for both)."""
    n = len(pair.labels)
    if not task.multi_label:  # accuracy is the share of correct clips: each draw is a weighted count
        truth = pair.labels.argmax(1)
        change = (pair.a.argmax(1) == truth).astype(np.float64) - (pair.b.argmax(1) == truth)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)
        return counts @ change / n
    out = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(n, size=n)
        out[i] = task.score(pair.a[rows], pair.labels[rows]) - task.score(pair.b[rows], pair.labels[rows])
    return out


def interval_of(logits: np.ndarray, labels: np.ndarray, task: Task, seed: int = 0) -> tuple[float, float]:
    """The 95 % bootstrap interval of one model's metric on one run's test clips (the report's figure)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    scores = []
    for _ in range(RESAMPLES[task.name] // 2):
        rows = rng.integers(n, size=n)
        scores.append(task.score(logits[rows], labels[rows]))
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def verdict(name: str, diff: dict, key: str) -> str:
    """One sentence on a difference: its size, its interval, what the interval covers, and what that means."""
    beyond = diff["ci95_low"] > 0 or diff["ci95_high"] < 0
    where = ("beyond the noise: the 95 % interval excludes 0" if beyond else
             "within the noise: the 95 % interval includes 0")
    covers = f"{diff['clips']} test clips" + (f" and {diff['runs']} runs and seeds" if diff["over"] != "test clips"
                                             else "")
    caveat = "" if diff["runs"] >= MIN_RUNS_RESAMPLED else (
        f" With {diff['runs']} run{'s' if diff['runs'] > 1 else ''} the interval holds the test clips' sampling noise "
        f"only, not how much another fold or seed would move the result: add runs or seeds (at least "
        f"{MIN_RUNS_RESAMPLED}) for that.")
    return (f"{name}: {diff['mean']:+.4f} {key} (95 % interval {diff['ci95_low']:+.4f} to {diff['ci95_high']:+.4f}, "
            f"paired bootstrap over {covers}), {where}.{caveat}")
