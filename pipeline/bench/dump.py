"""`cmkd bench --section dump`: the teacher-prediction dump, clips/s: the whole stage (store read + teacher forward +
Zarr write, with its fixed costs), and its loop alone at steady state."""
from __future__ import annotations

import shutil
import time

import numpy as np
import torch

from .. import layout
from ..cache.dump import dump
from ..data.batches import BatchSource, ZarrRows, inference_plan
from ..evaluation.inference import predict_batches
from ..models.checkpoint import load_checkpoint
from ..runs import Run
from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from .common import Results, Size, random_checkpoint, sync


def bench_dump(size: Size, dev: torch.device, settings, teacher: str, results: Results) -> PredictionStore:
    store, run = FeatureStore(layout.FEATURES), Run()
    checkpoint = random_checkpoint(teacher, layout.checkpoint(layout.labels_model(settings.teacher), run),
                                   store.classes, store.num_frames, store.num_mel_bins, store=store)
    dump(settings, "forward", run)  # warm-up run
    shutil.rmtree(layout.predictions("forward", run))
    started = time.perf_counter()
    dump(settings, "forward", run)
    batch, workers = settings.dump.batch_size, settings.dump.num_workers
    results.add("dump", f"teacher predictions, {teacher}", len(store.clip_ids) / (time.perf_counter() - started),
                "clips/s", f"batch {batch}, {workers} loader workers, read + forward + Zarr write, fixed costs "
                "included (checkpoint hash and load, worker start)")
    out = layout.DATA / f"predictions_{teacher}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    layout.predictions("forward", run).rename(out)

    # the dump's loop alone (the loader and the teacher's forward) once it runs: what a large dataset sees
    model, _ = load_checkpoint(checkpoint, dev)
    sequential = inference_plan(np.arange(len(store.clip_ids)), batch)
    specs = (sequential * (1 + (size.warmup + size.steps) // len(sequential)))[: size.warmup + size.steps]
    source = BatchSource(ZarrRows(store), None, workers, pin_memory=dev.type == "cuda")
    seen = 0
    for i, logits in enumerate(predict_batches(model, source, specs, store.normalization)):
        if i == size.warmup:
            sync(dev)
            started = time.perf_counter()
        seen += len(logits) if i >= size.warmup else 0
    sync(dev)
    results.add("dump", f"teacher predictions, {teacher}, steady state", seen / (time.perf_counter() - started),
                "clips/s", f"batch {batch}, {workers} loader workers, read + forward, after {size.warmup} "
                "batches")
    return PredictionStore(out)
