"""`cmkd bench --section read`: random-access batches from the feature and prediction stores, samples/s, with 0 and N
loader workers."""
from __future__ import annotations

import time

import torch

from .. import layout
from ..data.batches import BatchSource, ZarrRows
from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from .common import Results, Size, random_plan


def bench_read(size: Size, dev: torch.device, predictions: PredictionStore, results: Results) -> None:
    store = FeatureStore(layout.FEATURES)
    rows = ZarrRows(store, predictions)
    for workers in (0, size.workers):
        source = BatchSource(rows, None, workers, pin_memory=dev.type == "cuda")
        seen = 0
        for i, batch in enumerate(source.batches(random_plan(store, size.batch, size.warmup + size.steps, 0),
                                                 "clean")):
            if i == size.warmup:
                started = time.perf_counter()
            if i >= size.warmup:
                seen += len(batch["x"])
        results.add("read", f"features + cached predictions, {workers} loader workers",
                    seen / (time.perf_counter() - started), "samples/s",
                    f"random batches of {size.batch} from {len(store.clip_ids)} clips x {size.frames} frames")
