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


class BatchDataset(Dataset):
    def __init__(self, store: FeatureStore, batches: list[np.ndarray], predictions: PredictionStore | None = None,
                 cache_rows: np.ndarray | None = None):
        self.features = store.features
        self.labels = store.labels
        self.logits = predictions.logits if predictions is not None else None
        self.cache_rows = cache_rows  # feature row -> cache row, -1 where the clip is not cached
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rows = np.sort(self.batches[i])  # neighbouring clips share shards; the order within a batch is irrelevant
        batch = {
            "rows": torch.from_numpy(rows),
            "x": torch.from_numpy(read_rows(self.features, rows)),  # float16 [B, frames, mel_bins]
            "y": torch.from_numpy(self.labels[rows].astype(np.float32)),
        }
        if self.logits is not None:
            where = rows if self.cache_rows is None else self.cache_rows[rows]
            cached = where >= 0
            logits = np.zeros((len(rows), self.logits.shape[1]), dtype=np.float32)
            logits[cached] = read_rows(self.logits, where[cached])
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
           cache_rows: np.ndarray | None = None) -> DataLoader:
    """Batches in the order of `batches`; with workers, `prefetch_batches` per worker are read ahead."""
    return DataLoader(BatchDataset(store, batches, predictions, cache_rows), batch_size=None, shuffle=False,
                      num_workers=num_workers, pin_memory=pin_memory,
                      prefetch_factor=prefetch_batches if num_workers else None)
