"""`cmkd export MODEL --format F --out PATH`: a trained (or converted) model where models run, checked before it is
written.

  onnx, torchscript  one graph file: `--input features` (the default) takes raw Kaldi fbank [batch, frames, mel bins],
                     `--input waveform` takes 16 kHz mono audio [batch, samples] with the fbank inside
                     (pipeline/export/graphs.py); the normalisation is inside both, the batch is dynamic
  folder             the folder the model's ecosystem loads with one line, as its family writes it (its
                     `folder_format`: `huggingface` for an AST, which `transformers` loads; `timm` for a timm CNN with
                     mean pooling), with a model card (pipeline/export/folders.py); the family's format name is
                     accepted too (`cmkd models` lists each family's)

Every export is checked before it is reported: the exported model and the pipeline's own path score the same inputs
-- real audio files when given (`--check-audio`), else random ones -- at batch 1 and N, the largest difference is
reported, and above `tolerance` the export is refused and nothing is left at `--out`. Each carries a model card
(pipeline/export/card.py) with what the model is, what it learned from and how well it does.
"""
from __future__ import annotations

import time
from pathlib import Path

from .graphs import GRAPH_FORMATS, INPUTS, export_graph, onnx_latency

__all__ = ["INPUTS", "export", "formats", "onnx_latency"]


def formats() -> tuple[str, ...]:
    """Every --format: the graph files, `folder`, and the ecosystem folders the model families write."""
    from ..models import folder_formats

    return GRAPH_FORMATS + ("folder",) + folder_formats()


def export(checkpoint: Path, out: Path, fmt: str, audio: list[Path] | None = None, tolerance: float = 1e-3,
           input_kind: str = "features", results: Path | None = None, command: str | None = None) -> dict:
    """Write and check one export of `checkpoint`; returns what was checked and measured. `results`: the workspace's
    results/ folder, whose metrics and report the model card quotes (default: ./results when it is there)."""
    if fmt not in formats():
        raise ValueError(f"--format must be one of {', '.join(formats())}, got {fmt!r}")
    if input_kind not in INPUTS:
        raise ValueError(f"--input must be one of {', '.join(INPUTS)}, got {input_kind!r}")
    started = time.perf_counter()
    if fmt in GRAPH_FORMATS:
        report = export_graph(Path(checkpoint), Path(out), fmt, input_kind, audio, tolerance)
    else:
        from .folders import export_folder

        report = export_folder(Path(checkpoint), Path(out), fmt, audio, tolerance, results, command)
    return {**report, "export seconds": round(time.perf_counter() - started, 2)}
