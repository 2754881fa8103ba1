"""How sure a difference between two models is: a paired bootstrap over the test clips, and over the runs.

A test set of a few hundred clips is itself a sample: two models one clip apart on 80 clips may have swapped ranks
on another 80. A t-interval over the runs alone misses that (two runs that happen to be equal give it zero width),
so the interval of a difference (student - baseline, student - teacher) is resampled:

- within each run, the test clips are drawn with replacement, the same draw for both models (paired: a clip hard
  for one is usually hard for the other), and each model's headline metric recomputed on the draw. A draw is a
  weighting of the clips (clip i drawn k times counts k times: pipeline/task/headline.py), so every model's metric
  on every draw comes from one sort of its scores per class;
- with 3 or more runs, the runs too are drawn with replacement before their clips, so the interval also holds the
  spread between runs and seeds (a fold's difficulty, a seed's luck); with fewer, the interval is the test clips'
  sampling noise alone, and the report says so.

The difference of the mean over runs is taken on each of `resamples` draws. mAP on a draw is biased low (a draw
repeats clips and misses rare classes' positives, and AP is not linear in the clips), so the percentile interval of
the draws can miss the observed value altogether (it did, for one model's mAP on a 162-clip bird set). The interval
here is bias-corrected: the draws are centred on the observed value (their mean minus the observed value, the
bootstrap's estimate of its own bias, is taken off) before their 2.5 and 97.5 percentiles are read, so the interval
holds the observed value and keeps the draws' spread. Accuracy, a mean over clips, is not biased by a draw: its
interval is the draws' own percentiles. A difference is beyond the noise only when its interval excludes 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..task import Task

RESAMPLES = {"single-label": 2000, "multi-label": 500}
MIN_RUNS_RESAMPLED = 3
CELLS = 4_000_000  # clips x resamples weighted at once (32 MB of float64)


@dataclass(frozen=True)
class Paired:
    """One run's test clips scored by two models: a minus b."""
    a: np.ndarray       # logits [clips, classes]
    b: np.ndarray
    labels: np.ndarray  # [clips, classes]


def clip_draws(n: int, resamples: int, rng: np.random.Generator):
    """Weightings [k, n] of n clips, each a draw of n clips with replacement, in blocks of at most CELLS cells."""
    block = max(1, CELLS // max(n, 1))
    for start in range(0, resamples, block):
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=min(block, resamples - start)).astype(np.float64)


def run_draws(task: Task, logits: list[np.ndarray], labels: np.ndarray, resamples: int,
              rng: np.random.Generator) -> np.ndarray:
    """metric(logits[0]) - metric(logits[1]) (or metric(logits[0]) alone) on `resamples` draws of the clips [R]."""
    out = []
    for weights in clip_draws(len(labels), resamples, rng):
        scores = [task.scores(z, labels, weights) for z in logits]
        out.append(scores[0] - scores[1] if len(scores) == 2 else scores[0])
    return np.concatenate(out)


def centred_interval(draws: np.ndarray, observed: float, task: Task) -> tuple[float, float]:
    """The 95 % interval of the draws, after removing their bias (mean of the draws minus the observed value) where
    the task's headline is not a mean over clips (mAP); accuracy's draws are unbiased and taken as they are."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return float("nan"), float("nan")
    if task.mean_of_clips:
        low, high = np.percentile(finite, [2.5, 97.5])
        return float(low), float(high)
    low, high = np.percentile(finite - (finite.mean() - observed), [2.5, 97.5])
    return float(min(low, observed)), float(max(high, observed))


def difference(pairs: list[Paired], task: Task, resamples: int | None = None, seed: int = 0) -> dict:
    """The mean over runs of metric(a) - metric(b), with its 95 % bootstrap interval (see the module docstring)."""
    if not pairs:
        raise ValueError("no runs to compare")
    resamples = resamples or RESAMPLES[task.name]
    rng = np.random.default_rng(seed)
    observed = float(np.mean([task.score(p.a, p.labels) - task.score(p.b, p.labels) for p in pairs]))
    over_runs = len(pairs) >= MIN_RUNS_RESAMPLED
    per_run = np.stack([run_draws(task, [p.a, p.b], p.labels, resamples, rng) for p in pairs])  # [runs, R]
    runs = rng.integers(len(pairs), size=(resamples, len(pairs))) if over_runs else \
        np.broadcast_to(np.arange(len(pairs)), (resamples, len(pairs)))
    draws = per_run[runs, np.arange(resamples)[:, None]].mean(axis=1)
    low, high = centred_interval(draws, observed, task)
    return {"mean": observed, "ci95_low": low, "ci95_high": high, "runs": len(pairs),
            "clips": int(sum(len(p.labels) for p in pairs)), "resamples": resamples,
            "over": "test clips and runs" if over_runs else "test clips",
            "interval": "percentile" if task.mean_of_clips else "bias-corrected percentile"}


def interval_of(logits: np.ndarray, labels: np.ndarray, task: Task, seed: int = 0) -> tuple[float, float]:
    """The 95 % bootstrap interval of one model's metric on one run's test clips (the report's figure)."""
    rng = np.random.default_rng(seed)
    draws = run_draws(task, [logits], labels, RESAMPLES[task.name] // 2, rng)
    return centred_interval(draws, task.score(logits, labels), task)


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
