"""Batches for training and inference, read from the Zarr stores.

One dataset item is a whole batch: its clips are read from the sharded store concurrently, one chunk per clip
(stores.read_rows). DataLoader workers (train.num_workers) prefetch
batches in parallel. Features travel as stored (float16, half the bytes to copy) and are normalised on the
training device (FeatureStore.normalize).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .stores import FeatureStore, PredictionStore, read_rows
from .views import ViewSampler


class BatchDataset(Dataset):
    """Item i: the clips `batches[i]`; with `views`, each clip in the view `view_choice[i]` (pipeline/views.py)
    names, with its drawn parameters and its mixup partner's features and labels; with `predictions`, the
    cached teacher logits (of that view, when the cache holds views)."""

    def __init__(self, store: FeatureStore, batches: list[np.ndarray], predictions: PredictionStore | None = None,
                 cache_rows: np.ndarray | None = None, views: ViewSampler | None = None,
                 view_choice: list[np.ndarray | None] | None = None):
        self.features = store.features
        self.labels = store.labels
        self.predictions = predictions
        self.cache_rows = cache_rows  # feature row -> cache row, -1 where the clip is not cached
        self.batches = batches
        self.views, self.view_choice = views, view_choice

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        order = np.argsort(self.batches[i], kind="stable")  # neighbouring clips share shards: read in row order
        rows = self.batches[i][order]
        batch = {
            "rows": torch.from_numpy(rows),
            "x": torch.from_numpy(read_rows(self.features, rows)),  # float16 [B, frames, mel_bins]
            "y": torch.from_numpy(self.labels[rows].astype(np.float32)),
        }
        ks = None
        if self.views is not None and self.view_choice is not None and self.view_choice[i] is not None:
            ks = np.asarray(self.view_choice[i])[order]
            params = self.views.params(rows, ks)
            partners = params[:, 0].astype(np.int64)
            x_partner = batch["x"].clone()  # a clip without mixup is its own partner: read only the others
            mixed = np.flatnonzero(partners != rows)
            if len(mixed):
                x_partner[mixed] = torch.from_numpy(read_rows(self.features, partners[mixed]))
            batch.update(view=torch.from_numpy(ks), view_params=torch.from_numpy(params), x_partner=x_partner,
                         y_partner=torch.from_numpy(self.labels[partners].astype(np.float32)))
        if self.predictions is not None:
            where = rows if self.cache_rows is None else self.cache_rows[rows]
            cached = where >= 0
            logits = np.zeros((len(rows), len(self.predictions.classes)), dtype=np.float32)
            if cached.any():
                logits[cached] = self.predictions.read(where[cached], None if ks is None else ks[cached])
            batch["teacher_logits"] = torch.from_numpy(logits)
            batch["has_teacher"] = torch.from_numpy(cached)
        return batch


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """PSLA's balanced sampling: a clip's weight is the sum over its labels of 1000 / (that label's count + 0.01)."""
    per_class = 1000.0 / (labels.sum(axis=0).astype(np.float64) + 0.01)
    return labels.astype(np.float64) @ per_class


def batches_of(rows: np.ndarray, batch_size: int, shuffle: bool, generator: np.random.Generator | None = None,
               drop_last: bool = False) -> list[np.ndarray]:
    rows = generator.permutation(rows) if shuffle else rows
    cut = len(rows) - len(rows) % batch_size if drop_last and len(rows) >= batch_size else len(rows)
    return [rows[i : i + batch_size] for i in range(0, cut, batch_size)]


def loader(store: FeatureStore, batches: list[np.ndarray], predictions: PredictionStore | None = None,
           num_workers: int = 0, pin_memory: bool = False, prefetch_batches: int = 4,
           cache_rows: np.ndarray | None = None, views: ViewSampler | None = None,
           view_choice: list[np.ndarray | None] | None = None) -> DataLoader:
    """Batches in the order of `batches`; with workers, `prefetch_batches` per worker are read ahead."""
    return DataLoader(BatchDataset(store, batches, predictions, cache_rows, views, view_choice), batch_size=None,
                      shuffle=False,
                      num_workers=num_workers, pin_memory=pin_memory,
                      prefetch_factor=prefetch_batches if num_workers else None)
