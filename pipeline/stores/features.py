"""The feature store the features stage writes (layout in pipeline/features/extract.py), seen through one run."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import zarr

from ..normalization import Normalization
from ..runs import run_split
from ..task import Task, task_for


class FeatureStore:
    """Read access to the store written by the features stage (layout in pipeline/features/extract.py), seen through one
    run (pipeline/runs.py): `split` and the normalisation statistics are that run's."""

    def __init__(self, path: Path, run: str = "main"):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: feature store not found (run the features stage)")
        self.group = zarr.open_group(self.path, mode="r")
        attrs = self.group.attrs
        self.classes: list[str] = list(attrs["classes"])
        self.multi_label: bool = bool(attrs["multi_label"])
        self.task: Task = task_for(self.multi_label)
        self.fingerprint: str = attrs["fingerprint"]
        self.run = run
        split = run_split(run, self.group["split"][:], self.group["fold"][:], str(self.path))
        self.split = np.where(self.skipped != "", "skipped", split)  # clips left out by features.on_error: skip
        self.normalization: Normalization = self.statistics(self.indices("train"))

    def statistics(self, rows: np.ndarray) -> Normalization:
        """The normalisation of the features of `rows`: their mean and std (padding included, as the AST recipe
        computes them)."""
        sums = self.group["clip_stats"][:][rows].sum(axis=0)
        count = len(rows) * self.num_frames * self.num_mel_bins
        mean = sums[0] / count
        return Normalization(float(mean), float(np.sqrt(max(sums[1] / count - mean**2, 1e-12))))

    @cached_property
    def clip_ids(self) -> np.ndarray:
        return self.group["clip_ids"][:]

    @cached_property
    def labels(self) -> np.ndarray:
        return self.group["labels"][:]

    @cached_property
    def skipped(self) -> np.ndarray:
        """Why each clip was left out ("" for the clips that were not)."""
        return self.group["skipped"][:]

    @cached_property
    def groups(self) -> np.ndarray:
        """Each clip's group (speaker, recording, ...), "" for none (a store written before groups: all "")."""
        if "group" not in self.group:
            return np.full(len(self.clip_ids), "", dtype=object)
        return self.group["group"][:]

    @cached_property
    def folds(self) -> np.ndarray:
        return self.group["fold"][:]

    @cached_property
    def features(self) -> zarr.Array:
        return self.group["features"]

    @property
    def num_frames(self) -> int:
        return self.features.shape[1]

    @property
    def num_mel_bins(self) -> int:
        return self.features.shape[2]

    def indices(self, split: str) -> np.ndarray:
        rows = np.flatnonzero(self.split == split)
        if len(rows) == 0:
            raise ValueError(f"{self.path}: no clips in split {split!r} of run {self.run!r}"
                             + (" (a dataset with folds needs runs fold1, fold2, ...)" if self.run == "main"
                                and self.folds.any() else ""))
        return rows
