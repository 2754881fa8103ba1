"""`cmkd export MODEL --format onnx|torchscript --out FILE`: a trained student for deployment, checked.

The exported graph takes raw Kaldi fbank features [batch, frames, mel bins] (what `cmkd predict` computes from
audio: pipeline/predict.py) and returns logits [batch, classes]; the normalisation the model was trained with is
inside it, so a deployment needs no statistics. The batch is dynamic. The file carries the model's class list,
feature parameters and normalisation (ONNX metadata_props, or TorchScript's extra file `cmkd.json`).

Every export is checked before it is reported: the exported model (onnxruntime for ONNX, torch.jit.load for
TorchScript) and the PyTorch model score the same inputs, at batch 1 and the whole check batch: real features of
audio files when given (`--check-audio`), else random fbank-like values; the largest absolute logit difference is
reported and above `tolerance` the export is refused.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .models.checkpoint import Checkpoint, load_checkpoint
from .normalization import Normalization

FORMATS = ("onnx", "torchscript")


class Deployed(nn.Module):
    """The model with its input normalisation: raw fbank in, logits out."""

    def __init__(self, model: nn.Module, normalization: Normalization):
        super().__init__()
        self.model, self.normalization = model, normalization

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalization(features)).float()


def metadata(meta: Checkpoint) -> dict:
    return {"classes": meta.classes, "multi_label": meta.task_kind.multi_label, "num_frames": meta.num_frames,
            "num_mel_bins": meta.num_mel_bins, "features": meta.features, "normalization": meta.normalization,
            "model_config": meta.network, "input": "raw Kaldi fbank [batch, frames, mel bins]",
            "output": "logits [batch, classes]"}


def check_inputs(meta: Checkpoint, checkpoint: Path, audio: list[Path] | None,
                 count: int = 4) -> tuple[torch.Tensor, str]:
    if audio:
        from .predict import Predictor

        predictor = Predictor(checkpoint, dev=torch.device("cpu"))
        windows = torch.cat([predictor.windows(path) for path in audio])[:max(count, len(audio))]
        return windows, f"{len(windows)} windows of {len(audio)} audio files"
    g = torch.Generator().manual_seed(0)
    shape = (count, meta.num_frames, meta.num_mel_bins)
    norm = meta.input_normalization
    return torch.randn(shape, generator=g) * norm.std + norm.mean, \
        f"{count} random fbank-like inputs (no --check-audio)"


def export(checkpoint: Path, out: Path, fmt: str, audio: list[Path] | None = None,
           tolerance: float = 1e-3) -> dict:
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    model, ckpt = load_checkpoint(checkpoint, "cpu")
    deployed = Deployed(model, ckpt.input_normalization).eval()
    x, described = check_inputs(ckpt, checkpoint, audio)
    meta = metadata(ckpt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if fmt == "onnx":
        run = _onnx(deployed, x, out, meta)
    else:
        run = _torchscript(deployed, x, out, meta)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        expected = deployed(x).numpy()
    difference = max(float(np.abs(run(x[:1]) - expected[:1]).max()), float(np.abs(run(x) - expected).max()))
    if not difference <= tolerance:
        out.unlink(missing_ok=True)
        raise RuntimeError(f"{out}: the {fmt} export differs from PyTorch by {difference:.3g} (> {tolerance:g}) on "
                           f"{described}; not written")
    return {"out": str(out), "format": fmt, "checked on": described, "batch sizes checked": [1, len(x)],
            "max abs logit difference": difference, "export seconds": round(seconds, 2),
            "bytes": out.stat().st_size}


def _onnx(deployed: nn.Module, x: torch.Tensor, out: Path, meta: dict):
    try:
        import onnx
        import onnxruntime as ort
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as e:
        raise RuntimeError(f"--format onnx needs the export extra: pip install -e '.[export]' ({e})") from e
    torch.onnx.export(deployed, (x,), str(out), input_names=["features"], output_names=["logits"], dynamo=True,
                      dynamic_shapes={"features": {0: torch.export.Dim("batch")}}, verbose=False)
    graph = onnx.load(str(out))
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(graph, str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"features": batch.numpy()})[0]


def _torchscript(deployed: nn.Module, x: torch.Tensor, out: Path, meta: dict):
    with torch.no_grad():
        traced = torch.jit.trace(deployed, x[:1])
    torch.jit.save(traced, str(out), _extra_files={"cmkd.json": json.dumps(meta)})
    loaded = torch.jit.load(str(out))

    def run(batch):
        with torch.no_grad():
            return loaded(batch).numpy()
    return run


def onnx_latency(path: Path, frames: int, mel_bins: int, repeats: int = 10) -> float:
    """Median seconds per clip of onnxruntime on the CPU, one clip a call (the bench's deployment figure)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(-5, 4, (1, frames, mel_bins)).astype(np.float32)
    session.run(None, {"features": x})  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"features": x})
        times.append(time.perf_counter() - started)
    return float(np.median(times))
