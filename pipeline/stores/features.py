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
        usable = self.skipped == ""  # clips left out by features.on_error: skip are in no split
        manifest_split = self.group["split"][:]
        split = np.full(len(usable), "skipped", dtype=object)
        split[usable] = run_split(run, manifest_split[usable], self.folds[usable], str(self.path),
                                  self.groups[usable], float(attrs.get("validation_fraction", 0.15)))
        self.split = split.astype(np.dtypes.StringDType())
        self.groups_chosen_for_validation = (self.split == "val") & (manifest_split != "val")
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
    def clip_frames(self) -> np.ndarray:
        """Each clip's frames before padding or cropping."""
        return self.group["num_frames"][:]

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

    @property
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
            raise ValueError(f"{self.path}: no clips in split {split!r} of run {self.run!r}" + self._why_none(split))
        return rows

    def _why_none(self, split: str) -> str:
        if self.run == "main" and self.folds.any():
            return " (a dataset with folds needs runs fold1, fold2, ...)"
        if self.run == "main":
            return (f": the manifest marks no clip {split!r}; mark some in its split column, or leave the column "
                    f"empty and data.split sets the shares")
        return ""

    def validation_note(self) -> str | None:
        """Which whole groups validate this run, when the run chose them (pipeline/runs.py), else None."""
        chosen = self.groups_chosen_for_validation
        if not chosen.any():
            return None
        held = sorted(set(self.groups[chosen].tolist()))
        training = len(set(self.groups[np.isin(self.split, ["train", "val"])].tolist()))
        return (f"run {self.run}: the manifest marks no validation clip in its training folds; validating on "
                f"group{'s' if len(held) > 1 else ''} {', '.join(held)} ({int(chosen.sum())} clips), held out whole "
                f"from the {training} training groups (data.split.val sets the share)")
