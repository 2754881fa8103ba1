"""The ecosystem's own model folder of a model's family, with a model card (pipeline/export/card.py): the AST's
for `transformers` (Hugging Face), a timm CNN's for timm. Each family writes its folder and reads it back with the
ecosystem's own loader (its `write_folder`, pipeline/models/families/).

Each is checked before it is reported: the folder read back scores the same inputs as the checkpoint; above the
tolerance nothing is left at DIR.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import load_checkpoint
from .card import write_card
from .graphs import check_inputs


def export_folder(checkpoint: Path, out: Path, fmt: str, audio: list[Path] | None, tolerance: float,
                  results: Path | None, command: str | None) -> dict:
    model, meta = load_checkpoint(checkpoint, "cpu")
    family = getattr(model, "family", None)  # an ensemble of epochs (train.ensemble_last) has none
    if family is None:
        raise ValueError(f"{checkpoint}: an ensemble of {meta.network['name']} models has no ecosystem folder; "
                         "export it as ONNX or TorchScript")
    if fmt not in ("folder", family.folder_format):
        raise ValueError(f"--format {fmt}: {meta.network['name']} belongs to the {family.name} family, whose folder "
                         f"is {family.folder_format or 'none (export it as ONNX or TorchScript)'}")
    features, _, described = check_inputs(meta, checkpoint, audio, "features")
    x = meta.input_normalization(features)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not an empty folder; give a new --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        run, loads_with = family.write_folder(model, meta, out)
        with torch.no_grad():
            expected = model(x).numpy()
        difference = max(float(np.abs(run(x[:1]) - expected[:1]).max()), float(np.abs(run(x) - expected).max()))
        if not difference <= tolerance:
            raise RuntimeError(f"{out}: the {family.folder_format} folder differs from the checkpoint by "
                               f"{difference:.3g} logits (> {tolerance:g}) on {described}; not written")
        card = write_card(out, checkpoint, meta, family, loads_with, difference, results, command)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return {"out": str(out), "format": family.folder_format, "files": sorted(p.name for p in out.iterdir()),
            "checked on": described, "batch sizes checked": [1, len(x)], "max abs logit difference": difference,
            "loads with": loads_with, "model card": str(card)}
