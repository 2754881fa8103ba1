"""ONNX and TorchScript graphs of a model, features in or audio in, checked against the pipeline's own path.

  --input features  the raw features of the model's front-end [batch, frames, mel bins] (the Kaldi fbank, or its
                    family's own), as `cmkd predict` computes them, in; logits out
  --input waveform  mono float32 audio at the front-end's rate [batch, samples] in (any length: a clip shorter than
                    the model's window is padded and a longer one cropped to its first window, as the features stage
                    does; every clip of a batch has the batch's length); the front-end (its `graph`,
                    pipeline/features/frontend.py, with ONNX's DFT for the FFT) and the normalisation are inside;
                    logits out

The check compares the exported graph (onnxruntime for ONNX, torch.jit.load for TorchScript) with the pipeline's own
path -- for audio, the features stage's front-end clip by clip (float64), padded or cropped, rounded to float16,
normalised, the model -- at batch 1 and at the whole check batch. The file carries the model's classes, feature
parameters, normalisation and input (ONNX metadata_props, TorchScript's extra file `cmkd.json`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..features.frontend import checkpoint_frontend
from ..models.checkpoint import Checkpoint, load_checkpoint
from ..normalization import Normalization

GRAPH_FORMATS = ("onnx", "torchscript")
INPUTS = ("features", "waveform")


class Deployed(nn.Module):
    """The model with its input normalisation: raw fbank in, logits out."""

    def __init__(self, model: nn.Module, normalization: Normalization):
        super().__init__()
        self.model, self.normalization = model, normalization

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalization(features)).float()


def front_end(meta: Checkpoint) -> nn.Module:
    """The features stage's path from audio to this model's features (its front-end's), as one module."""
    return checkpoint_frontend(meta).graph(meta.num_frames)


class DeployedFromAudio(nn.Module):
    """The model with the features stage and its normalisation in front: 16 kHz audio in, logits out."""

    def __init__(self, model: nn.Module, meta: Checkpoint):
        super().__init__()
        self.front = front_end(meta)
        self.deployed = Deployed(model, meta.input_normalization)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.deployed(self.front(waveform))


def metadata(meta: Checkpoint, input_kind: str) -> dict:
    f, frontend = meta.fbank, checkpoint_frontend(meta)
    window_s = frontend.samples_for(meta.num_frames) / frontend.sample_rate
    given = {"features": f"raw {frontend.name} features [batch, frames, mel bins]",
             "waveform": f"{frontend.sample_rate} Hz mono float32 audio [batch, samples]; clips shorter than "
                         f"{window_s:g} s are padded and longer ones cropped to their first {window_s:g} s, as the "
                         f"features stage does"}[input_kind]
    return {"classes": meta.classes, "multi_label": meta.task_kind.multi_label, "num_frames": meta.num_frames,
            "num_mel_bins": meta.num_mel_bins, "features": f, "normalization": meta.normalization,
            "model_config": meta.network, "input": given, "output": "logits [batch, classes]"}


def check_inputs(meta: Checkpoint, checkpoint: Path, audio: list[Path] | None, input_kind: str,
                 count: int = 4) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(exported graph's input, the pipeline's features for it, what they are): real audio when given. For audio
    the features are the features stage's own (pipeline/features/extract.py: the clip decoded as far as the stage
    decodes it, the Kaldi fbank in float64, padded or cropped, float16)."""
    from ..features.audio import load_audio
    from ..features.extract import clip_features

    frontend, g = checkpoint_frontend(meta), torch.Generator().manual_seed(0)
    rate = frontend.sample_rate
    if input_kind == "waveform":
        if audio:
            waves = [load_audio(path, rate) for path in audio[:count]]
            length = min(len(w) for w in waves)  # a batch has one length
            waves = torch.stack([w[:length] for w in waves])
            described = f"{len(waves)} clips of {length / rate:g} s from {len(audio)} audio files"
        else:
            waves = 0.1 * torch.randn(count, int(rate * 3.7), generator=g)
            described = f"{count} random clips of 3.7 s (no --check-audio)"
        expected = torch.stack([torch.from_numpy(clip_features(w, frontend, meta.num_frames)[0]).float()
                                for w in waves])
        return waves, expected, described
    if audio:
        from ..predict import Predictor

        predictor = Predictor(checkpoint, dev=torch.device("cpu"))
        windows = torch.cat([predictor.windows(path) for path in audio])[:max(count, len(audio))]
        return windows, windows, f"{len(windows)} windows of {len(audio)} audio files"
    norm = meta.input_normalization
    x = torch.randn(count, meta.num_frames, meta.num_mel_bins, generator=g) * norm.std + norm.mean
    return x, x, f"{count} random fbank-like inputs (no --check-audio)"


def export_graph(checkpoint: Path, out: Path, fmt: str, input_kind: str, audio: list[Path] | None,
                 tolerance: float) -> dict:
    model, meta = load_checkpoint(checkpoint, "cpu")
    deployed = (DeployedFromAudio(model, meta) if input_kind == "waveform" else
                Deployed(model, meta.input_normalization)).eval()
    x, features, described = check_inputs(meta, checkpoint, audio, input_kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run = (_onnx if fmt == "onnx" else _torchscript)(deployed, x, out, metadata(meta, input_kind), input_kind)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        expected = Deployed(model, meta.input_normalization).eval()(features).numpy()  # the pipeline's own path
    difference = max(float(np.abs(run(x[:1]) - expected[:1]).max()), float(np.abs(run(x) - expected).max()))
    if not difference <= tolerance:
        out.unlink(missing_ok=True)
        raise RuntimeError(f"{out}: the {fmt} export ({input_kind} in) differs from the pipeline by {difference:.3g} "
                           f"(> {tolerance:g}) on {described}; not written")
    return {"out": str(out), "format": fmt, "input": input_kind, "checked on": described,
            "checked against": "the pipeline's path: the features stage's Kaldi fbank per clip + the model" if
            input_kind == "waveform" else "the PyTorch model", "batch sizes checked": [1, len(x)],
            "max abs logit difference": difference, "graph seconds": round(seconds, 2),
            "bytes": out.stat().st_size}


def _onnx(deployed: nn.Module, x: torch.Tensor, out: Path, meta: dict, input_kind: str):
    try:
        import onnx
        import onnxruntime as ort
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as e:
        raise RuntimeError(f"--format onnx needs the export extra: pip install -e '.[export]' ({e})") from e
    name = input_kind  # the forward argument: features or waveform
    dims = {0: torch.export.Dim("batch")} if input_kind == "features" else \
        {0: torch.export.Dim("batch"), 1: torch.export.Dim("samples", min=2)}
    torch.onnx.export(deployed, (x,), str(out), input_names=[name], output_names=["logits"], dynamo=True,
                      dynamic_shapes={name: dims}, verbose=False)
    graph = onnx.load(str(out))
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(graph, str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {name: batch.numpy()})[0]


def _torchscript(deployed: nn.Module, x: torch.Tensor, out: Path, meta: dict, input_kind: str):
    with torch.no_grad():
        traced = torch.jit.trace(deployed, x[:1])
    torch.jit.save(traced, str(out), _extra_files={"cmkd.json": json.dumps(meta)})
    loaded = torch.jit.load(str(out))

    def run(batch):
        with torch.no_grad():
            return loaded(batch).numpy()
    return run


def onnx_latency(path: Path, x: np.ndarray, repeats: int = 10) -> float:
    """Median seconds per call of onnxruntime on the CPU for one input `x` (the bench's deployment figure)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: x})  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - started)
    return float(np.median(times))
