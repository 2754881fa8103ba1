"""`cmkd export MODEL --format F --out PATH`: a trained (or converted) model where models run, checked before it is
written.

  onnx, torchscript  one graph file: `--input features` (the default) takes raw Kaldi fbank [batch, frames, mel bins],
                     `--input waveform` takes 16 kHz mono audio [batch, samples] with the fbank inside
                     (pipeline/export/graphs.py); the normalisation is inside both, the batch is dynamic
  huggingface        a folder `transformers` loads with one line (an AST): config.json, model.safetensors,
                     preprocessor_config.json, README.md (pipeline/export/folders.py)
  timm               a folder timm loads with one line (an EfficientNet with mean pooling): timm's own hub layout,
                     README.md
  folder             the one of those two the model's family writes (its `ecosystem_folder`)

Every export is checked before it is reported: the exported model and the pipeline's own path score the same inputs
-- real audio files when given (`--check-audio`), else random ones -- at batch 1 and N, the largest difference is
reported, and above `tolerance` the export is refused and nothing is left at `--out`. Each carries a model card
(pipeline/export/card.py) with what the model is, what it learned from and how well it does.
"""
from __future__ import annotations

import time
from pathlib import Path

from .graphs import GRAPH_FORMATS, INPUTS, export_graph, onnx_latency

FOLDER_FORMATS = ("huggingface", "timm")
FORMATS = GRAPH_FORMATS + FOLDER_FORMATS + ("folder",)

__all__ = ["FORMATS", "INPUTS", "export", "onnx_latency"]


def export(checkpoint: Path, out: Path, fmt: str, audio: list[Path] | None = None, tolerance: float = 1e-3,
           input_kind: str = "features", results: Path | None = None, command: str | None = None) -> dict:
    """Write and check one export of `checkpoint`; returns what was checked and measured. `results`: the workspace's
    results/ folder, whose metrics and report the model card quotes (default: ./results when it is there)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if input_kind not in INPUTS:
        raise ValueError(f"--input must be one of {', '.join(INPUTS)}, got {input_kind!r}")
    started = time.perf_counter()
    if fmt in GRAPH_FORMATS:
        report = export_graph(Path(checkpoint), Path(out), fmt, input_kind, audio, tolerance)
    else:
        from .folders import export_folder

        report = export_folder(Path(checkpoint), Path(out), fmt, audio, tolerance, results, command)
    return {**report, "export seconds": round(time.perf_counter() - started, 2)}
