"""The feature store: its layout, written here block by block for the features stage (pipeline/features/extract.py),
and read here, seen through one run.

Layout (schema version 1; one row per clip, in manifest order):
  features   float16 [clips, frames, mel_bins]  raw log-mel, chunk = one clip, shard = `clips_per_shard` clips
  labels     uint8   [clips, classes]           multi-hot
  clip_ids   str     [clips]
  split      str     [clips]                    the manifest's train / val / test
  fold       int16   [clips]                    the dataset's own fold, 0 if none (runs foldK, pipeline/runs.py)
  group      str     [clips]                    the clip's group (speaker, recording, ...), "" if none
  num_frames int32   [clips]                    frames before padding or cropping
  clip_stats float64 [clips, 2]                 sum and sum of squares of each clip's features, so that any run's
                                                normalisation statistics come from its own training clips
  skipped    str     [clips]                    why a clip was left out (features.on_error: skip), or ""
  attrs: cmkd_schema, classes, multi_label, validation_fraction (data.split.val, pipeline/runs.py), feature_params,
         fbank (which implementation), fingerprint (of manifest, classes and params), manifest, dataset (where
         prepare read it from), created_by, code version
Version 0 (before the schema) is read as version 1: a store without `group` has every clip in no group.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import zarr

from ..normalization import Normalization
from ..runs import run_split
from .schema import check_schema

VERSION = 1


def create_arrays(group: zarr.Group, clips: list, classes: list[str], frames: int, bins: int, shard: int) -> None:
    """The arrays of a new store for `clips` (pipeline/manifest.py Clip), those known before extraction filled."""
    n = len(clips)
    group.create_array("features", shape=(n, frames, bins), chunks=(1, frames, bins), shards=(shard, frames, bins),
                       dtype="float16")
    group.create_array("num_frames", shape=(n,), chunks=(shard,), dtype="int32")
    group.create_array("clip_stats", shape=(n, 2), chunks=(shard, 2), dtype="float64")
    labels = np.zeros((n, len(classes)), dtype=np.uint8)
    index = {c: i for i, c in enumerate(classes)}
    for row, clip in enumerate(clips):
        labels[row, [index[label] for label in clip.labels]] = 1
    group.create_array("labels", data=labels, chunks=(min(n, 65536), len(classes)))
    group.create_array("clip_ids", data=np.array([c.clip_id for c in clips], dtype=np.dtypes.StringDType()))
    group.create_array("split", data=np.array([c.split for c in clips], dtype=np.dtypes.StringDType()))
    group.create_array("fold", data=np.array([c.fold for c in clips], dtype=np.int16))
    group.create_array("group", data=np.array([c.group for c in clips], dtype=np.dtypes.StringDType()))
    group.create_array("skipped", shape=(n,), chunks=(shard,), dtype=np.dtypes.StringDType(), fill_value="")


def write_block(group: zarr.Group, start: int, features: np.ndarray, frames: np.ndarray, reasons: list[str]) -> None:
    """One block of clips from row `start`: their features, frames, why any was skipped, and each clip's sums."""
    end = start + len(features)
    group["features"][start:end] = features
    group["num_frames"][start:end] = frames
    group["skipped"][start:end] = np.array(reasons, dtype=np.dtypes.StringDType())
    as64 = features.astype(np.float64)
    group["clip_stats"][start:end] = np.stack([as64.sum(axis=(1, 2)), (as64**2).sum(axis=(1, 2))], axis=1)


class FeatureStore:
    """Read access to the store written by the features stage, seen through one run (pipeline/runs.py): `split`
    and the normalisation statistics are that run's."""

    def __init__(self, path: Path, run: str = "main"):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: feature store not found (run the features stage)")
        self.group = zarr.open_group(self.path, mode="r")
        check_schema(self.group, self.path, "features", VERSION)
        attrs = self.group.attrs
        self.classes: list[str] = list(attrs["classes"])
        self.multi_label: bool = bool(attrs["multi_label"])
        self.fingerprint: str = attrs["fingerprint"]
        # the clips, whatever the front-end (stores of one dataset share it; a store from before: its fingerprint)
        self.clips_fingerprint: str = attrs.get("clips_fingerprint", self.fingerprint)
        self.frontend: str = dict(attrs.get("feature_params", {})).get("frontend", "fbank")
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

    def untrained_classes(self) -> list[str]:
        """The classes no training clip of this run has: the model never sees a positive of them (multi-label data
        drawn from a long tail has such classes; their test AP is then chance)."""
        counts = self.labels[self.indices("train")].sum(axis=0)
        return [name for name, n in zip(self.classes, counts) if n == 0]

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
