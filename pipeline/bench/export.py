"""`cmkd bench --section export`: deployment latency on the CPU of each family's model exported to ONNX, audio in and
fbank in, next to eager PyTorch."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import load_checkpoint
from .common import NUM_CLASSES, Results, bench_models, random_checkpoint


def bench_export(size_name: str, results: Results, frames: int = 1024) -> None:
    """Deployment on the CPU, one 10 s clip a call (the median of 10): each model exported to ONNX taking audio
    (the fbank inside) and taking fbank, each checked against the pipeline, timed in onnxruntime next to eager
    PyTorch on the fbank (the fbank's own time then comes on top: `features` rows)."""
    from ..export import export, onnx_latency

    wave = (0.1 * np.random.default_rng(0).standard_normal((1, 160_000))).astype(np.float32)  # 10 s at 16 kHz
    features = {"sample_rate": 16000, "num_mel_bins": 128, "frame_shift_ms": 10.0, "frame_length_ms": 25.0,
                "target_frames": frames}
    for name in bench_models(size_name, "export_models").values():
        path = random_checkpoint(name, Path(f"export_{name}.pt"), [f"c{i}" for i in range(NUM_CLASSES)], frames,
                                 normalization={"mean": -4.27, "std": 4.57}, features=features)
        model, meta = load_checkpoint(path)
        fbank_in = (np.random.default_rng(0).normal(-5, 4, (1, frames, 128))).astype(np.float32)
        for kind, x in (("waveform", wave), ("features", fbank_in)):
            report = export(path, Path(f"export_{name}_{kind}.onnx"), "onnx", input_kind=kind)
            seconds = onnx_latency(Path(report["out"]), x)
            results.add("export", f"{name} ONNX, {kind} in (onnxruntime, CPU), 10 s clip", seconds * 1000, "ms/clip",
                        f"{frames} frames; max abs logit difference vs the pipeline "
                        f"{report['max abs logit difference']:.2g}")
        x = meta.input_normalization(torch.from_numpy(fbank_in))
        with torch.no_grad():
            model(x)
            times = []
            for _ in range(10):
                started = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - started)
        results.add("export", f"{name} PyTorch eager, features in (CPU), 10 s clip", float(np.median(times)) * 1000,
                    "ms/clip", f"{frames} frames, {torch.get_num_threads()} threads")
