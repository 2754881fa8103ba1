"""`cmkd bench --section features` (and `distributed`): extraction clips/s, decode + fbank + Zarr write, with 1 and N
Dask workers, and the fbank computation alone in each precision."""
from __future__ import annotations

import shutil
import time

import torch

from .. import layout
from ..features.extract import write_feature_store
from ..features.fbank import BatchedFbank, pad_batch
from .common import Results, Size, sync


def bench_features(size: Size, dev: torch.device, settings, results: Results, cluster: bool = True) -> None:
    """Extraction clips/s (float64 on the CPU, as the store is made by default; float32 and float64 on a GPU), with
    1 and N Dask workers; then the fbank alone, float64 against float32, on waveforms already in memory."""
    runs = [("float64", "cpu", 1, "threads"), ("float64", "cpu", size.workers, "threads"),
            ("float64", "cpu", size.workers, "processes")]
    if dev.type == "cuda":
        runs += [(p, "cuda", size.workers, "threads") for p in ("float32", "float64")]
    if cluster:  # a dask.distributed LocalCluster of 1 and N worker processes
        runs += [("float64", "cpu", 1, "distributed"), ("float64", "cpu", size.workers, "distributed")]
    single = {}  # clips/s of one distributed worker, for the scaling efficiency
    for precision, where, workers, scheduler in runs:
        out = layout.DATA / f"features_{precision}_{where}_{workers}_{scheduler}.zarr"
        cfg = settings.features.model_copy(update={"workers": workers, "device": where, "precision": precision,
                                                   "scheduler": scheduler})
        started = time.perf_counter()
        write_feature_store(layout.MANIFEST, layout.CLASSES, out, cfg, multi_label=False)
        seconds = time.perf_counter() - started
        rate = size.clips / seconds
        detail = f"{size.clips} clips of {size.clip_seconds:g} s, decode + fbank + Zarr write"
        if scheduler == "distributed":
            detail += ", cluster start included"
            if workers == 1:
                single[where] = rate
            elif where in single:
                detail += f"; scaling efficiency {rate / (workers * single[where]):.0%} of {workers}x one worker"
        name = f"{workers} Dask {'distributed workers' if scheduler == 'distributed' else scheduler}"
        results.add("features", f"extract, {precision} fbank on {where}, {name}", rate, "clips/s", detail)
    shutil.move(layout.DATA / f"features_float64_cpu_{size.workers}_threads.zarr", layout.FEATURES)

    # the fbank computation alone, on waveforms already in memory, in each precision
    g = torch.Generator().manual_seed(0)
    waves = [0.1 * torch.randn(int(size.clip_seconds * 16000), generator=g) for _ in range(size.fbank_batch)]
    batch, lengths = pad_batch(waves)
    batch = batch.to(dev)
    for dtype in (torch.float32, torch.float64):
        model = BatchedFbank(dtype=dtype).to(dev)
        with torch.no_grad():
            model(batch, lengths, size.frames)  # warm-up (cuFFT plans, allocator)
            sync(dev)
            passes = 10 if dev.type == "cuda" else 2
            started = time.perf_counter()
            for _ in range(passes):
                model(batch, lengths, size.frames)
            sync(dev)
        rate = passes * len(waves) / (time.perf_counter() - started)
        results.add("features", f"fbank alone, {str(dtype).removeprefix('torch.')} on {dev.type}", rate, "clips/s",
                    f"batches of {len(waves)} {size.clip_seconds:g} s clips already on the device, "
                    f"{torch.get_num_threads()} threads")
