"""The ecosystem's own model folders, each with a model card (pipeline/export/card.py):

  huggingface  an AST as `transformers` loads it offline: config.json (ASTConfig: sizes, strides, max_length,
               num_mel_bins, id2label / label2id, layer_norm_eps), model.safetensors (the Hub's key layout) and
               preprocessor_config.json (ASTFeatureExtractor with the model's own mean, std and max_length), so that
               `transformers.pipeline("audio-classification", model=DIR)` takes audio and `cmkd convert DIR` reads
               it back. The mapping of the weights is the AST family's (pipeline/models/ast.py: to_hugging_face).
  timm         an EfficientNet (mean pooling) in the folder timm itself writes for its hub models (timm's
               save_for_hf: config.json with architecture, num_classes, in_chans 1, label names; model.safetensors),
               for `timm.create_model("local-dir:DIR", pretrained=True)`; it takes the normalised fbank as an image
               [batch, 1, mel bins, frames] (pipeline/models/efficientnet.py: to_timm).

Each is checked before it is reported: the folder is read back (Hugging Face: by cmkd's own reader of Hugging Face
folders; timm: by timm) and scores the same inputs as the checkpoint; above the tolerance nothing is left at DIR.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import Checkpoint, load_checkpoint
from .card import write_card
from .graphs import check_inputs


def export_folder(checkpoint: Path, out: Path, fmt: str, audio: list[Path] | None, tolerance: float,
                  results: Path | None, command: str | None) -> dict:
    model, meta = load_checkpoint(checkpoint, "cpu")
    if fmt == "folder":  # the ecosystem the model's family belongs to
        fmt = getattr(model, "ecosystem_folder", None)
        if fmt is None:
            raise ValueError(f"{meta.network['name']}: no ecosystem folder for this model; export it as ONNX")
    features, _, described = check_inputs(meta, checkpoint, audio, "features")
    x = meta.input_normalization(features)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not an empty folder; give a new --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        writer = {"huggingface": write_hugging_face, "timm": write_timm}[fmt]
        run, loads_with = writer(model, meta, out)
        with torch.no_grad():
            expected = model(x).numpy()
        difference = max(float(np.abs(run(x[:1]) - expected[:1]).max()), float(np.abs(run(x) - expected).max()))
        if not difference <= tolerance:
            raise RuntimeError(f"{out}: the {fmt} folder differs from the checkpoint by {difference:.3g} logits "
                               f"(> {tolerance:g}) on {described}; not written")
        card = write_card(out, checkpoint, meta, fmt, loads_with, difference, results, command)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return {"out": str(out), "format": fmt, "files": sorted(p.name for p in out.iterdir()), "checked on": described,
            "batch sizes checked": [1, len(x)], "max abs logit difference": difference, "loads with": loads_with,
            "model card": str(card)}


def write_hugging_face(model, meta: Checkpoint, out: Path):
    from safetensors.torch import save_file

    from ..models.ast import hf_to_cmkd, to_hugging_face

    if meta.network["name"] not in {f"ast_{size}" for size in ("test", "tiny", "small", "base")}:
        raise ValueError(f"--format huggingface writes an AST (ASTForAudioClassification); this model is "
                         f"{meta.network['name']} (--format timm writes an EfficientNet)")
    weights, config = to_hugging_face(model.state_dict(), meta)
    save_file({k: v.contiguous() for k, v in weights.items()}, out / "model.safetensors",
              metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    norm, f = meta.input_normalization, meta.fbank
    (out / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "ASTFeatureExtractor", "feature_size": 1, "sampling_rate": int(f["sample_rate"]),
        "num_mel_bins": meta.num_mel_bins, "max_length": meta.num_frames, "mean": norm.mean, "std": norm.std,
        "do_normalize": True, "padding_value": 0.0, "return_attention_mask": False}, indent=2) + "\n")

    # read back as cmkd reads a Hugging Face folder: the same weights, keys mapped both ways
    from safetensors.torch import load_file

    back, grid = hf_to_cmkd(load_file(out / "model.safetensors"), {"hf_config": config}, out)
    again = type(model)(num_classes=meta.num_classes, num_frames=meta.num_frames, num_mel_bins=meta.num_mel_bins,
                        **_ast_dims(meta)).eval()
    again.load_state_dict(back)
    if grid != again.grid_size:
        raise RuntimeError(f"{out}: the config's patch grid {grid} is not the model's {again.grid_size}")

    def run(batch):
        with torch.no_grad():
            return again(batch).numpy()
    return run, ('transformers.pipeline("audio-classification", model=DIR) or '
                 'transformers.ASTForAudioClassification.from_pretrained(DIR)')


def _ast_dims(meta: Checkpoint) -> dict:
    from ..models.ast import SIZES

    size = SIZES[meta.network["name"].removeprefix("ast_")]
    return {**size, "fstride": meta.network.get("fstride", 10), "tstride": meta.network.get("tstride", 10),
            "layer_norm_eps": meta.network.get("layer_norm_eps")}


def write_timm(model, meta: Checkpoint, out: Path):
    import timm
    from timm.models import save_for_hf

    if not hasattr(model, "to_timm"):
        raise ValueError(f"--format timm writes an EfficientNet; this model is {meta.network['name']} "
                         "(--format huggingface writes an AST)")
    native = model.to_timm()
    save_for_hf(native, str(out), model_config={
        "label_names": meta.classes,
        "cmkd": {"input": "the normalised Kaldi fbank as an image [batch, 1, mel bins, frames]: (x - mean) / (2 std)",
                 "normalization": meta.normalization, "features": meta.fbank, "num_frames": meta.num_frames,
                 "task": meta.task}}, model_args={"in_chans": 1}, safe_serialization=True)
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()  # timm's own loader

    def run(batch):
        with torch.no_grad():
            return loaded(batch.transpose(1, 2).unsqueeze(1)).numpy()
    return run, ('timm.create_model("local-dir:DIR", pretrained=True) on the normalised fbank '
                 '[batch, 1, mel bins, frames]')
