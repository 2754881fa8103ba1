"""Model checkpoints: weights plus everything needed to rebuild the model and to know what it was trained on.

Saved as plain tensors, numbers, strings, lists and dicts, so they load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn

from ..provenance import code_version
from ..stores import StoreMismatchError
from . import build_model
from .ensemble import Ensemble


def save_checkpoint(path: Path, model: nn.Module, **meta) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "code": code_version(), **meta}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint under the final name


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from the config stored in the checkpoint (not from params.yaml) and load its weights.

    A checkpoint saved with `ensemble` weights (train.ensemble_last) loads as the Ensemble of those epochs' models.
    """
    ckpt = torch.load(path, map_location=device, weights_only=True)

    def build(weights: dict) -> nn.Module:
        model = build_model(ckpt["model_config"], ckpt["num_classes"], ckpt["num_frames"], ckpt["num_mel_bins"])
        model.load_state_dict(weights)
        return model

    model = Ensemble([build(w) for w in ckpt["ensemble"]]) if ckpt.get("ensemble") else build(ckpt["model"])
    return model.to(device).eval(), ckpt


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def teacher_record(path: Path, ckpt: dict) -> dict:
    """How a cache or a student names the teacher checkpoint it came from."""
    return {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path), "architecture": ckpt["architecture"],
            "model_config": ckpt["model_config"]}


def check_trained_on(ckpt: dict, path: Path, store) -> None:
    """Refuse to run a checkpoint over a feature store other than the one it was trained on."""
    if ckpt["features_fingerprint"] != store.fingerprint:
        raise StoreMismatchError(f"{path} was trained on another feature store than {store.path}")
    if ckpt.get("run", "main") != store.run:
        raise StoreMismatchError(f"{path} was trained in run {ckpt.get('run', 'main')!r}, not {store.run!r}: "
                                 f"its training clips may be this run's test clips")
    if ckpt["classes"] != store.classes:
        raise StoreMismatchError(f"{path} predicts other classes than {store.path} holds")


def input_normalizer(ckpt: dict, store):
    """Raw float16 fbank -> this model's input, with the statistics it was trained with ((x - mean) / (2 std)).

    For a model trained here those are its run's (the store's); an adopted pretrained teacher keeps its own
    (AudioSet's for the AudioSet AST), so the pipeline feeds every model what it was trained on."""
    norm = ckpt.get("normalization")
    if not norm:
        return store.normalize
    mean, std = float(norm["mean"]), float(norm["std"])
    return lambda x: (x.float() - mean) / (2 * std)
