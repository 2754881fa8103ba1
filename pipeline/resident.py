"""The stores held in the training device's memory for the whole of training (`train.resident`), when they fit.

On a GPU, the loader path (worker processes reading Zarr chunks, pinned copies) competes for the CPU with the
process that launches the model's kernels; a small CNN step then waits for it. On a CPU, the workers (or, without
them, the reads in the training process) take cores from the training step itself. A store that fits in a fraction
of the device's available memory (ESC-50 at 512 frames is 0.26 GB of float16 features) is read once, with Dask,
and each batch is gathered in memory: no workers, no copies. The batches are the same dicts the loader yields
(pipeline/data.py), with the same values, so the training loop and its results do not change.
"""
from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import torch

from .stores import FeatureStore, PredictionStore
from .views import ViewSampler

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


class ResidentStore:
    def __init__(self, store: FeatureStore, device: torch.device, predictions: PredictionStore | None = None,
                 cache_rows: np.ndarray | None = None, views: ViewSampler | None = None):
        features = store.features
        self.x = torch.from_numpy(da.from_zarr(features, chunks=features.shards or features.chunks).compute()).to(device)
        self.y = torch.from_numpy(store.labels.astype(np.float32)).to(device)
        self.device, self.views, self.logits = device, views, None
        if predictions is not None:
            n = len(store.clip_ids)
            rows = np.arange(n) if cache_rows is None else cache_rows
            cached = np.flatnonzero(rows >= 0)
            if views is None:
                logits = np.zeros((n, len(store.classes)), dtype=np.float32)
                logits[cached] = predictions.read(rows[cached])
            else:  # [clips, K, classes], dense even for a top-k cache
                logits = np.zeros((n, views.count, len(store.classes)), dtype=np.float32)
                for k in range(views.count):
                    logits[cached, k] = predictions.read(rows[cached], np.full(len(cached), k))
            self.logits = torch.from_numpy(logits).to(device)
            self.has_teacher = torch.from_numpy(rows >= 0).to(device)

    def batches(self, batches: list[np.ndarray], view_choice: list[np.ndarray] | None = None):
        """The loader's batches, gathered on the device."""
        # a DataLoader draws its base seed from torch's global RNG when iterated; draw it too, so that both sources
        # leave the RNG (SpecAugment's, mixup's) in the same state and give the same training run
        torch.empty((), dtype=torch.int64).random_()
        for i, batch_rows in enumerate(batches):
            order = np.argsort(batch_rows, kind="stable")  # the loader's order within a batch
            rows = batch_rows[order]
            index = torch.from_numpy(rows).to(self.device)
            batch = {"rows": index, "x": self.x[index], "y": self.y[index]}
            ks = None
            if self.views is not None and view_choice is not None:
                ks = np.asarray(view_choice[i])[order]
                params = self.views.params(rows, ks)
                partners = torch.from_numpy(params[:, 0].astype(np.int64)).to(self.device)
                batch.update(view=torch.from_numpy(ks), view_params=torch.from_numpy(params),
                             x_partner=self.x[partners], y_partner=self.y[partners])
            if self.logits is not None:
                logits = self.logits[index]
                if ks is not None:
                    logits = logits[torch.arange(len(rows), device=self.device), torch.from_numpy(ks).to(self.device)]
                batch.update(teacher_logits=logits, has_teacher=self.has_teacher[index])
            yield batch
