"""Cross-fitted teacher predictions (dump.cross_fit: k): no training clip's cached target comes from a teacher that
trained on it.

A teacher scores its own training clips almost perfectly, so a plain cache hands the student little more than its
labels back on exactly the clips it learns from. With k > 1 the run's training clips are split into k parts
(stratified by class, keeping each group -- recording, speaker -- in one part, seeded by the run's seed); teacher j
(trained by stage train@<arch>, pipeline/training/jobs.py) trains on the other k - 1 parts and the dump takes each
training clip's logits from the teacher of its part. Validation and test clips, which no teacher trained on, get
the mean of the k teachers' logits. The cache records each row's teacher (`teacher_part`, -1 for the mean).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..stores.features import FeatureStore
from ..stores.schema import StoreMismatchError

MEAN_OF_PARTS = -1  # teacher_part of a row whose logits are the mean of the k teachers (not a training clip)


def part_of_rows(store: FeatureStore, k: int, seed: int) -> np.ndarray:
    """Each feature row's part 0..k-1 if it is a training clip of the store's run, else MEAN_OF_PARTS.

    Stratified by class (multi-label: by each clip's rarest class), groups kept whole, deterministic for a seed.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold  # (2 s to import: only here)

    train = store.indices("train")
    if k > len(train):
        raise ValueError(f"dump.cross_fit = {k}: run {store.run!r} has only {len(train)} training clips")
    labels = store.labels[train].astype(bool)
    counts = labels.sum(axis=0)
    # the stratum of a clip: its class, or for multi-label its rarest class (-1: no class at all)
    strata = np.where(labels.any(axis=1), np.argmin(np.where(labels, counts, np.inf), axis=1), -1)
    groups = store.groups[train]
    with warnings.catch_warnings():  # a class with fewer than k clips cannot be in every part; that is fine
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if (groups != "").any():
            # a clip without a group is a group of its own
            groups = np.array([str(g) if g != "" else f"clip:{c}" for g, c in zip(groups, store.clip_ids[train])])
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            folds = splitter.split(train, strata, groups)
        else:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(train, strata)
        parts = np.full(len(store.clip_ids), MEAN_OF_PARTS, dtype=np.int8)
        for j, (_, held_out) in enumerate(folds):
            parts[train[held_out]] = j
    return parts


def held_out_clips(store: FeatureStore, parts: np.ndarray, part: int) -> list[str]:
    return [str(clip) for clip in store.clip_ids[parts == part]]


def check_part_teacher(meta, path, store: FeatureStore, parts: np.ndarray, part: int) -> None:
    """Refuse a part teacher (its Checkpoint `meta`) whose held-out clips are not exactly part `part` of this split."""
    record = meta.cross_fit
    if not record or record.get("part") != part or record.get("k") != int(parts.max()) + 1:
        raise StoreMismatchError(f"{path}: not the teacher of cross-fit part {part} of {int(parts.max()) + 1} "
                                 f"(it records {record and {k: record[k] for k in ('k', 'part', 'seed')}}); "
                                 "re-run stage train")
    if set(record["held_out"]) != set(held_out_clips(store, parts, part)):
        raise StoreMismatchError(f"{path}: its held-out clips are not part {part} of this run's training clips "
                                 "(another split seed, k or feature store); re-run stage train")


def pick_part(logits: torch.Tensor, parts: np.ndarray) -> torch.Tensor:
    """[clips, k, classes] logits of every part teacher -> each clip's own part teacher's, or the mean of all."""
    part = torch.as_tensor(parts.astype(np.int64), device=logits.device)
    own = logits[torch.arange(len(part), device=logits.device), part.clamp(min=0)]
    return torch.where((part >= 0)[:, None], own, logits.mean(dim=1))


class PartTeachers(torch.nn.Module):
    """The k part teachers run together: logits [clips, k, classes], for pick_part to choose from."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).float() for member in self.members], dim=1)
