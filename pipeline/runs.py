"""Runs: params `runs` lists the train/val/test splits to run teacher -> cache -> student on (a DVC foreach).

- `main`:  the manifest's own split column.
- `foldK`: cross-validation over a dataset's official folds (ESC-50's 1..5): the clips of fold K are the test set,
           every other clip trains, except those the manifest marks `val`, which are held out for monitoring.

Each run has its own normalisation statistics (from its own training clips), teacher, cached predictions,
student and baseline, so no run's test clips ever reach another run's training.
"""
from __future__ import annotations

import re

import numpy as np

FOLD_RUN = re.compile(r"fold(\d+)")


def held_out_fold(run: str) -> int | None:
    """The test fold of `foldK`, None for `main`; anything else is refused."""
    if run == "main":
        return None
    match = FOLD_RUN.fullmatch(run)
    if not match:
        raise ValueError(f"run {run!r}: expected 'main' or 'fold<K>' (for example fold1)")
    return int(match.group(1))


def run_split(run: str, split: np.ndarray, folds: np.ndarray, source: str = "the feature store") -> np.ndarray:
    """Each clip's split (train / val / test) in `run`, from the manifest's split and fold columns."""
    fold = held_out_fold(run)
    if fold is None:
        return split
    have = sorted(set(folds.tolist()) - {0})
    if fold not in have:
        raise ValueError(f"run {run!r}: {source} has no clips in fold {fold} "
                         f"(its folds: {', '.join(map(str, have)) or 'none; use run main'})")
    return np.where(folds == fold, "test", np.where(split == "val", "val", "train")).astype(split.dtype)
