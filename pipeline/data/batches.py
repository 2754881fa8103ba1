"""Batches: what each step reads is planned once per epoch, and one function assembles it from either row source.

A plan is a list of BatchSpec: the rows of a batch, and how its augmentation is drawn (a seed for the batch, or
for each clip the cached view it replays). `assemble` turns a spec into tensors read from a row source:
  ZarrRows      the Zarr stores, one concurrent read per clip chunk, in DataLoader workers (pipeline/stores)
  ResidentRows  the same arrays held in the training device's memory (pipeline/data/resident.py)
Both answer the same four questions (features, labels, cached logits, whether a clip is cached), so the
batches, and the training run, are the same whichever is used (tests/test_batches.py).

Rows are read in increasing order (neighbouring clips share a shard); the augmentation is drawn in the spec's
order before that, so a batch's draws do not depend on how it is read. With several processes (pipeline/runtime.py),
every rank draws the whole batch and keeps its own slice of it: N processes see the batches one process sees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from ..stores.schema import read_rows
from .augment import AugmentSettings, Draws, apply, draw_batch, draw_views, mix, take
from .augment import to_device as draws_to

TEACHER_READS = ("none", "clean", "views")  # which cached logits a batch carries


@dataclass(frozen=True)
class BatchSpec:
    rows: np.ndarray                 # feature-store rows, as drawn
    seed: int | None = None          # draws the batch's augmentation; None (and no views): clean clips
    views: np.ndarray | None = None  # per clip, the cached view it replays (its augmentation comes with it)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """PSLA's balanced sampling: a clip's weight is the sum over its labels of 1000 / (that label's count + 0.01)."""
    per_class = 1000.0 / (labels.sum(axis=0, dtype=np.float64) + 0.01)
    # a block of clips at a time: AudioSet's 2 million x 527 labels as float64 would be 8.4 GB
    return np.concatenate([labels[i : i + 8192] @ per_class for i in range(0, len(labels), 8192)] or [np.zeros(0)])


def training_plan(rng: np.random.Generator, rows: np.ndarray, batch_size: int, weights: np.ndarray | None = None,
                  augment: bool = True, views: int = 0) -> list[BatchSpec]:
    """One epoch: the rows shuffled (or drawn with `weights`, with replacement), in full batches, each with the seed
    of its augmentation or, with `views`, the cached view each clip replays."""
    order = rng.choice(rows, len(rows), p=weights / weights.sum()) if weights is not None else rng.permutation(rows)
    cut = len(order) - len(order) % batch_size if len(order) >= batch_size else len(order)
    plan = []
    for start in range(0, cut, batch_size):
        batch = order[start : start + batch_size]
        if views:
            plan.append(BatchSpec(batch, views=rng.integers(views, size=len(batch))))
        else:
            plan.append(BatchSpec(batch, seed=int(rng.integers(2**63)) if augment else None))
    return plan


def inference_plan(rows: np.ndarray, batch_size: int) -> list[BatchSpec]:
    """The clean clips `rows`, in order."""
    return [BatchSpec(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]


@dataclass
class Augmenter:
    """Draws a batch's augmentation parameters (pipeline/data/augment.py) from its spec."""
    cfg: AugmentSettings
    frames: int
    bins: int
    pool: np.ndarray                      # mixup partners: the run's training clips
    view_seeds: np.ndarray | None = None  # uint64 [clips, K] of a cache with views
    lengths: np.ndarray | None = None     # every store row's frames before padding (augment.mask_scale: clip)

    def params(self, spec: BatchSpec) -> Draws | None:
        if spec.views is not None:
            return draw_views(self.view_seeds[spec.rows, spec.views], spec.rows, self.cfg, self.frames, self.bins,
                              self.pool, self.lengths)
        if spec.seed is not None:
            return draw_batch(spec.seed, spec.rows, self.cfg, self.frames, self.bins, self.pool, self.lengths)
        return None


class ZarrRows:
    """Rows read from the Zarr stores (on the CPU, in the process or loader worker that asks)."""

    def __init__(self, store: FeatureStore, cache: PredictionStore | None = None, cache_rows: np.ndarray | None = None):
        self.features_array, self.label_array = store.features, store.labels
        self.cache, self.cache_rows = cache, cache_rows  # feature row -> cache row, -1 where not cached

    def features(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(read_rows(self.features_array, rows))  # float16 [n, frames, mel_bins]

    def labels(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.label_array[rows].astype(np.float32))

    def logits(self, rows: np.ndarray, views: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        where = rows if self.cache_rows is None else self.cache_rows[rows]
        cached = where >= 0
        logits = np.zeros((len(rows), len(self.cache.classes)), dtype=np.float32)
        if cached.any():
            logits[cached] = self.cache.read(where[cached], None if views is None else views[cached])
        return torch.from_numpy(logits), torch.from_numpy(cached)


def assemble(source, spec: BatchSpec, augmenter: Augmenter | None = None, teacher: str = "none",
             part: tuple[int, int] = (0, 1)) -> dict[str, torch.Tensor]:
    """The batch `spec` describes, read from `source` (ZarrRows or ResidentRows); with part = (rank, ranks), this
    process's share of it.

    Keys: rows, x (stored features), y (labels); when augmented, params (each clip's draws, by name), x_partner and
    y_partner (each clip's mixup partner); with teacher "clean", teacher_logits / has_teacher of each clip and of its
    partner (partner_logits / partner_has_teacher); with teacher "views", those of the view each clip replays.
    """
    params = augmenter.params(spec) if augmenter is not None else None
    rows, views = spec.rows, spec.views
    rank, ranks = part
    if ranks > 1:
        share = slice(rank * len(rows) // ranks, (rank + 1) * len(rows) // ranks)
        rows, views = rows[share], None if views is None else views[share]
        params = None if params is None else take(params, share)
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    batch = {"rows": torch.from_numpy(rows), "x": source.features(rows), "y": source.labels(rows)}
    if params is not None:
        params = take(params, order)
        partners = params["partner"]
        mixed = np.flatnonzero(partners != rows)  # a clip without mixup is its own partner: read only the others
        batch["params"] = {name: torch.from_numpy(values) for name, values in params.items()}
        (batch["x_partner"],) = _partners((batch["x"],), lambda r: (source.features(r),), partners, mixed)
        batch["y_partner"] = source.labels(partners)
    if teacher == "clean":
        batch["teacher_logits"], batch["has_teacher"] = source.logits(rows)
        if params is not None:
            batch["partner_logits"], batch["partner_has_teacher"] = _partners(
                (batch["teacher_logits"], batch["has_teacher"]), source.logits, partners, mixed)
    elif teacher == "views":
        batch["teacher_logits"], batch["has_teacher"] = source.logits(rows, views[order])
    elif teacher != "none":
        raise ValueError(f"teacher must be one of {TEACHER_READS}, got {teacher!r}")
    return batch


def _partners(own: tuple, read, partners: np.ndarray, mixed: np.ndarray) -> list[torch.Tensor]:
    """Copies of `own` whose mixed clips hold their partners' values instead (read for those clips alone)."""
    out = [t.clone() for t in own]
    if len(mixed):
        index = torch.from_numpy(mixed).to(out[0].device)
        for tensor, values in zip(out, read(partners[mixed])):
            tensor[index] = values
    return out


class _Batches(Dataset):
    """Item i: assemble(specs[i]) from the Zarr stores, in a loader worker."""

    def __init__(self, source: ZarrRows, specs: list[BatchSpec], augmenter, teacher: str, part):
        self.source, self.specs, self.augmenter, self.teacher, self.part = source, specs, augmenter, teacher, part

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return assemble(self.source, self.specs[i], self.augmenter, self.teacher, self.part)


@dataclass
class BatchSource:
    """Where a stage's batches come from: the stores in device memory (`resident`) or read from Zarr by a loader."""
    rows: object                       # ZarrRows, or ResidentRows
    augmenter: Augmenter | None = None
    num_workers: int = 0
    pin_memory: bool = False
    part: tuple[int, int] = (0, 1)
    prefetch_batches: int = 4          # per loader worker

    def batches(self, specs: list[BatchSpec], teacher: str = "none"):
        if not isinstance(self.rows, ZarrRows):  # resident: gathered on the device, in this process
            return (assemble(self.rows, spec, self.augmenter, teacher, self.part) for spec in specs)
        return DataLoader(_Batches(self.rows, specs, self.augmenter, teacher, self.part), batch_size=None,
                          shuffle=False, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          prefetch_factor=self.prefetch_batches if self.num_workers else None,
                          generator=torch.Generator())  # its own: loading never draws from torch's global RNG


def to_device(batch: dict, normalization, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model input and the labels of a batch on `device`: normalised (a Normalization), augmented, labels mixed
    alike."""
    x = normalization(batch["x"].to(device, non_blocking=True))
    y = batch["y"].to(device, non_blocking=True)
    if "params" in batch:
        params = draws_to(batch["params"], device)
        x = apply(x, normalization(batch["x_partner"].to(device, non_blocking=True)), params)
        y = mix(y, batch["y_partner"].to(device, non_blocking=True), params)
    return x, y
