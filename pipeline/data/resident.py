"""The stores held in the training device's memory for the whole of training (`train.resident`), when they fit.

On a GPU, the loader path (worker processes reading Zarr chunks, pinned copies) competes for the CPU with the
process that launches the model's kernels; a small CNN step then waits for it. On a CPU, the workers (or, without
them, the reads in the training process) take cores from the training step itself. A store that fits in a fraction
of the device's available memory (ESC-50 at 512 frames is 0.26 GB of float16 features) is read once, with Dask,
and each batch is gathered in memory: no workers, no copies. ResidentRows answers what ZarrRows answers
(pipeline/data/batches.py), with the same values, so the batches and the training run are the same.
"""
from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import torch

from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore

MEMORY_FRACTION = 0.5  # of the device's available memory, at most, for the resident stores


def resident_bytes(store: FeatureStore, predictions: PredictionStore | None) -> int:
    n, c = store.features.shape[0], len(store.classes)
    total = store.features.nbytes + n * c * 4
    if predictions is not None:
        views = predictions.views["count"] if predictions.views else 0
        total += n * c * 4 * (1 + views)
    return int(total)


def available_bytes(device: torch.device) -> int:
    """Free GPU memory; on the CPU, the memory Linux can give without swapping (MemAvailable), capped by the
    cgroup's limit when the process runs in a container that has one."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    available = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit, current = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.exists() and current.exists() and limit.read_text().strip() != "max":
        available = min(available, int(limit.read_text()) - int(current.read_text()))
    return max(0, available)


def use_resident(choice, store: FeatureStore, predictions: PredictionStore | None, device: torch.device) -> bool:
    """train.resident: auto (when the stores fit in half the device's available memory), true, or false."""
    if choice not in (True, False, "auto"):
        raise ValueError(f"train.resident must be auto, true or false, got {choice!r}")
    if choice is False:
        return False
    needed, free = resident_bytes(store, predictions), available_bytes(device)
    fits = needed <= MEMORY_FRACTION * free
    if choice is True and not fits:
        raise MemoryError(f"train.resident: true, but the stores ({store.path}) need {needed / 1e9:.1f} GB and the "
                          f"{device.type} has {free / 1e9:.1f} GB available (set train.resident: auto or false)")
    return fits


class ResidentRows:
    """The feature store (and the cached logits) in `device` memory; rows are gathered there."""

    def __init__(self, store: FeatureStore, device: torch.device, cache: PredictionStore | None = None,
                 cache_rows: np.ndarray | None = None):
        features = store.features
        self.device = device
        held = da.from_zarr(features, chunks=features.shards or features.chunks).compute()
        self.x = torch.from_numpy(held).to(device)
        self.y = torch.from_numpy(store.labels.astype(np.float32)).to(device)
        self.clean = self.per_view = self.cached = None
        if cache is not None:
            n = len(store.clip_ids)
            where = np.arange(n) if cache_rows is None else cache_rows
            rows = np.flatnonzero(where >= 0)
            clean = np.zeros((n, len(store.classes)), dtype=np.float32)
            clean[rows] = cache.read(where[rows])
            self.clean = torch.from_numpy(clean).to(device)
            if cache.views:  # [clips, K, classes], dense even for a top-k cache
                per_view = np.zeros((n, cache.views["count"], len(store.classes)), dtype=np.float32)
                for k in range(cache.views["count"]):
                    per_view[rows, k] = cache.read(where[rows], np.full(len(rows), k))
                self.per_view = torch.from_numpy(per_view).to(device)
            self.cached = torch.from_numpy(where >= 0).to(device)

    def _index(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(rows)).to(self.device)

    def features(self, rows: np.ndarray) -> torch.Tensor:
        return self.x[self._index(rows)]

    def labels(self, rows: np.ndarray) -> torch.Tensor:
        return self.y[self._index(rows)]

    def logits(self, rows: np.ndarray, views: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._index(rows)
        if views is None:
            return self.clean[index], self.cached[index]
        return self.per_view[index, self._index(views)], self.cached[index]
