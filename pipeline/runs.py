"""Runs: one teacher -> cache -> student chain per (split, seed), the DVC matrix over params `runs` x `seeds`.

Splits:
- `main`:  the manifest's own split column.
- `foldK`: cross-validation over a dataset's official folds (ESC-50's 1..5): the clips of fold K are the test set,
           every other clip trains, except those the manifest marks `val`, which are held out for monitoring. When
           none of the run's training folds has a `val` clip (a few groups, as FSDD's six speakers, where the hash
           split put no training speaker into validation), whole groups of the run's own training clips are held out
           instead: at least one, as many as data.split.val asks for, never all (`validation_groups`).
Seeds: each seed trains its own teacher, cache, student and baseline on the same split (initialisation, batch
order, augmentation draws and view seeds differ), so the report can give a spread and not one number.

Each split has its own normalisation statistics (from its own training clips), so no run's test clips ever reach
another run's training.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

FOLD_RUN = re.compile(r"fold(\d+)")


def check_split_name(split: str) -> None:
    if split != "main" and not FOLD_RUN.fullmatch(split):
        raise ValueError(f"run {split!r}: expected 'main' or 'fold<K>' (for example fold1)")


@dataclass(frozen=True)
class Run:
    split: str = "main"
    seed: int = 0

    def __post_init__(self):
        check_split_name(self.split)

    @property
    def folder(self) -> Path:
        """Where this run's artifacts live below data/runs and results/: <split>/seed<seed>."""
        return Path(self.split) / f"seed{self.seed}"

    def __str__(self) -> str:
        return f"{self.split}, seed {self.seed}"


def held_out_fold(split: str) -> int | None:
    """The test fold of `foldK`, None for `main`."""
    check_split_name(split)
    return None if split == "main" else int(FOLD_RUN.fullmatch(split).group(1))


def run_split(split: str, manifest_split: np.ndarray, folds: np.ndarray, source: str = "the feature store",
              groups: np.ndarray | None = None, val_fraction: float = 0.15) -> np.ndarray:
    """Each clip's split (train / val / test) in run `split`, from the manifest's split, fold and group columns."""
    fold = held_out_fold(split)
    if fold is None:
        return manifest_split
    have = sorted(set(folds.tolist()) - {0})
    if fold not in have:
        raise ValueError(f"run {split!r}: {source} has no clips in fold {fold} "
                         f"(its folds: {', '.join(map(str, have)) or 'none; use run main'})")
    out = np.where(folds == fold, "test", np.where(manifest_split == "val", "val", "train")).astype(object)
    if not (out == "val").any() and groups is not None and (groups[out == "train"] != "").any():
        held = validation_groups(groups[out == "train"], val_fraction, f"run {split!r} of {source}")
        out[(out == "train") & np.isin(groups, held)] = "val"
    return out.astype(manifest_split.dtype)


class ValidationSplitError(InputError, ValueError):
    pass


def validation_groups(groups: np.ndarray, fraction: float, where: str) -> list[str]:
    """Whole groups of a run's training clips to validate on: in a stable order (a hash of the group's name),
    until they hold `fraction` of the clips; at least one, never all of them."""
    names, counts = np.unique(groups[groups != ""], return_counts=True)
    if len(names) < 2:
        raise ValidationSplitError(
            f"{where}: no validation clips, and its training clips are {len(names)} group "
            f"({', '.join(map(repr, names.tolist()))}): a whole group held out for validation would leave none to "
            "train on. Mark validation clips in the manifest's split column (val), or give it more groups")
    order = sorted(range(len(names)), key=lambda i: hashlib.sha256(str(names[i]).encode()).hexdigest())
    held, clips = [], 0
    for i in order[:-1]:  # never every group
        held.append(str(names[i]))
        clips += int(counts[i])
        if clips >= fraction * len(groups):
            break
    return held
