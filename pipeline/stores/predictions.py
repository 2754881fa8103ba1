"""The teacher's cached predictions, one row per clip of the feature store they were made from: written here for the
dump (pipeline/cache/dump.py: a teacher run here) and the import (pipeline/cache/imported.py: predictions made
elsewhere) alike, and read here.

Layout (schema version 1): logits float32 [clips, classes] (the clean clips, raw: before tau; chunk = one clip,
sharded), clip_ids str [clips] (the feature store's, in its order; a subset when imported); with K augmented views
(pipeline/data/augment.py) also view_seeds uint64 [clips, K], view_params float32 [clips, K, fields] (what each seed
drew, for audit; attrs `view_fields` names the columns) and either view_logits float32 [clips, K, classes] or, with
dump.top_k, view_top_logits float32 and view_top_classes int32 [clips, K, top_k]; with cross-fitting teacher_part
int [clips]. attrs: cmkd_schema, classes, features_fingerprint, features (its path), run, seed, direction, teacher
(the checkpoints and their sha256, or the imported file), views, multi_label, coverage (imported), cross_fit,
created_by, code version.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import zarr

from ..provenance import code_version
from .features import FeatureStore
from .schema import StoreMismatchError, check_schema, read_rows, schema

VERSION = 1


def create_arrays(group: zarr.Group, clip_ids: np.ndarray, num_classes: int, clips_per_shard: int, views: int = 0,
                  top_k: int = 0, view_seeds: np.ndarray | None = None, view_fields: tuple = ()) -> None:
    """The arrays of a new store for `clip_ids` (the logits filled block by block by `write_block`)."""
    n, c, shard = len(clip_ids), num_classes, min(clips_per_shard, max(len(clip_ids), 1))
    group.create_array("logits", shape=(n, c), chunks=(1, c), shards=(shard, c), dtype="float32")
    group.create_array("clip_ids", data=np.asarray(clip_ids).astype(np.dtypes.StringDType()))
    if not views:
        return
    group.create_array("view_seeds", data=view_seeds, chunks=(shard, views))
    group.create_array("view_params", shape=(n, views, len(view_fields)), chunks=(shard, views, len(view_fields)),
                       dtype="float32")
    group.attrs["view_fields"] = list(view_fields)
    for name, width, dtype in ((("view_top_logits", top_k, "float32"), ("view_top_classes", top_k, "int32"))
                               if top_k else (("view_logits", c, "float32"),)):
        group.create_array(name, shape=(n, views, width), chunks=(1, views, width), shards=(shard, views, width),
                           dtype=dtype)


def write_block(group: zarr.Group, start: int, logits: np.ndarray, view_logits: np.ndarray | None = None,
                view_params: np.ndarray | None = None, top_k: int = 0) -> None:
    """Rows start.. of the clean clips' logits [clips, classes] and, with views, each view's logits [clips, K,
    classes] (only the top k kept with dump.top_k) and the parameters its augmentation drew [clips, K, fields]."""
    end = start + len(logits)
    group["logits"][start:end] = logits
    if view_logits is None:
        return
    group["view_params"][start:end] = view_params.astype(np.float32)
    if top_k:
        import torch

        top = torch.from_numpy(view_logits).topk(top_k, dim=-1)
        group["view_top_logits"][start:end] = top.values.numpy()
        group["view_top_classes"][start:end] = top.indices.numpy().astype(np.int32)
    else:
        group["view_logits"][start:end] = view_logits


def describe(group: zarr.Group, features: FeatureStore, run, direction: str, teacher: dict, views: dict | None = None,
             **more) -> None:
    """The store's attrs: which feature store, run and class list its rows belong to, and where they came from."""
    group.attrs.update({**schema("predictions", VERSION), "classes": features.classes,
                        "features_fingerprint": features.fingerprint, "features": str(features.path),
                        "clips_fingerprint": features.clips_fingerprint,
                        "run": run.split, "seed": run.seed, "direction": direction, "teacher": teacher,
                        "views": views, "multi_label": features.multi_label, "created_by": "cmkd dump_logits",
                        "code": code_version(), **more})


class PredictionStore:
    """The teacher's cached logits, one row per clip of the feature store it was dumped from (layout above)."""
    TOP_K_FILL = -1.0e4  # the logit of a class outside a view's stored top k: probability ~0 under any tau

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: teacher prediction store not found (run the dump_logits stage)")
        self.group = zarr.open_group(self.path, mode="r")
        check_schema(self.group, self.path, "predictions", VERSION)
        self.classes: list[str] = list(self.group.attrs["classes"])
        self.features_fingerprint: str = self.group.attrs["features_fingerprint"]
        self.clips_fingerprint: str = self.group.attrs.get("clips_fingerprint", self.features_fingerprint)
        self.run: str = self.group.attrs["run"]
        self.teacher: dict = dict(self.group.attrs["teacher"])

    @cached_property
    def logits(self) -> zarr.Array:
        return self.group["logits"]

    @cached_property
    def view_arrays(self) -> dict[str, zarr.Array]:
        """The per-view arrays, opened once (reads happen per batch)."""
        names = ("view_top_logits", "view_top_classes") if self.views and self.views["top_k"] else ("view_logits",)
        return {name: self.group[name] for name in names} if self.views else {}

    @cached_property
    def views(self) -> dict | None:
        """{"count": K, "config": view config, "top_k": k or 0}, or None for a plain cache."""
        return self.group.attrs.get("views")

    @cached_property
    def view_seeds(self) -> np.ndarray:
        """uint64 [clips, K]: the seed each view's augmentation is drawn from (pipeline/data/augment.py)."""
        return self.group["view_seeds"][:]

    def read(self, rows: np.ndarray, views: np.ndarray | None = None) -> np.ndarray:
        """Logits [len(rows), classes] of the clean clips, or of view views[i] of each clip rows[i]."""
        if views is None:
            return read_rows(self.logits, rows)
        pick = np.arange(len(rows)), views
        arrays = self.view_arrays
        if not self.views["top_k"]:
            return read_rows(arrays["view_logits"], rows)[pick]
        top = read_rows(arrays["view_top_logits"], rows)[pick]
        classes = read_rows(arrays["view_top_classes"], rows)[pick]
        dense = np.full((len(rows), len(self.classes)), self.TOP_K_FILL, dtype=np.float32)
        np.put_along_axis(dense, classes.astype(np.int64), top, axis=1)
        return dense

    @cached_property
    def clip_ids(self) -> np.ndarray:
        return self.group["clip_ids"][:]

    def check_matches(self, features: FeatureStore, train_rows: np.ndarray | None = None,
                      missing: str = "error") -> np.ndarray:
        """Refuse a cache made from another feature store, class list, run or clip order, saying which.

        Returns each feature row's row in this cache (-1 where the clip is not cached). A cache may hold a subset
        of the clips, in the feature store's order; training clips missing from it are an error unless
        `missing` is "gt_only" (distill.missing), which trains them on the ground-truth loss alone.
        """
        where = f"{self.path} does not match {features.path}"
        if self.classes != features.classes:
            raise StoreMismatchError(f"{where}: class lists differ ({len(self.classes)} vs {len(features.classes)} "
                                     "classes; first difference at "
                                     f"{_first_difference(self.classes, features.classes)})")
        if self.run != features.run:
            raise StoreMismatchError(f"{where}: its teacher was trained in run {self.run!r}, this is run "
                                     f"{features.run!r} (its test clips may be another run's training clips)")
        if self.clips_fingerprint != features.clips_fingerprint:  # (a teacher's store may be another front-end's)
            raise StoreMismatchError(f"{where}: made from the clips of another dataset or manifest (clips "
                                     f"fingerprint {self.clips_fingerprint[:12]}, this store's is "
                                     f"{features.clips_fingerprint[:12]}): re-run dump_logits")
        if missing not in ("error", "gt_only"):
            raise ValueError(f"distill.missing must be error or gt_only, got {missing!r}")
        if np.array_equal(self.clip_ids, features.clip_ids):
            return np.arange(len(features.clip_ids))
        row_of = {clip: row for row, clip in enumerate(features.clip_ids)}
        unknown = [clip for clip in self.clip_ids if clip not in row_of]
        if unknown:
            raise StoreMismatchError(f"{where}: {len(unknown)} cached clips are not in the feature store "
                                     f"(first: {unknown[0]!r})")
        feature_rows = np.array([row_of[clip] for clip in self.clip_ids], dtype=np.int64)
        if len(feature_rows) and (np.diff(feature_rows) <= 0).any():
            i = int(np.flatnonzero(np.diff(feature_rows) <= 0)[0]) + 1
            raise StoreMismatchError(f"{where}: clip ids differ in order, first at row {i} "
                                     f"({self.clip_ids[i]!r} vs {features.clip_ids[i]!r})")
        cache_rows = np.full(len(features.clip_ids), -1, dtype=np.int64)
        cache_rows[feature_rows] = np.arange(len(feature_rows))
        rows = np.arange(len(cache_rows)) if train_rows is None else train_rows
        absent = rows[cache_rows[rows] < 0]
        if len(absent) and missing == "error":
            raise StoreMismatchError(f"{where}: {len(absent)} of {len(rows)} training clips are not cached (first: "
                                     f"{features.clip_ids[absent[0]]!r}); set distill.missing: gt_only to train "
                                     f"them on the ground-truth loss alone")
        return cache_rows


def _first_difference(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
