"""Starting a model from weights in a local file (nothing is downloaded).

Accepted files: a timm ImageNet checkpoint (`.pth`/`.pt`/`.bin` state dict, or `.safetensors`) of the matching
family, or a checkpoint this project wrote (any class count, any number of frames). Reading the file and checking
that the result fits happen here, for every family; mapping a file's keys and shapes onto a family's network is
that family's own `pretrained_state`, in its file (pipeline/models/families/). The classifier
is always re-initialised when the class count differs, and never copied from ImageNet.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from . import PretrainedError
from .checkpoint import is_checkpoint, parse

__all__ = ["PretrainedError", "load_pretrained", "read_state_dict"]


HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def weights_file(path: Path) -> Path:
    """The weights file a path names: itself, or a Hugging Face model folder's model.safetensors / .bin."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = [path / name for name in HF_WEIGHTS if (path / name).is_file()]
    if not found:
        raise PretrainedError(f"{path}: a folder without {' or '.join(HF_WEIGHTS)} (a Hugging Face model)")
    return found[0]


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state dict, metadata); metadata is a cmkd checkpoint's description as `checkpoint` (a Checkpoint),
    a Hugging Face model's config.json (and preprocessor_config.json) as `hf_config` (`hf_preprocessor`), or the
    `cfg` a file keeps beside its weights (`{'cfg', 'model'}`, BEATs') as `config`, else empty.

    A Hugging Face model may be named by its folder or by its weights file (config.json beside it)."""
    path = weights_file(path)
    if not path.is_file():
        raise PretrainedError(f"{path}: pretrained weights file not found")
    meta = {}
    for name, key in (("config.json", "hf_config"), ("preprocessor_config.json", "hf_preprocessor")):
        if (path.parent / name).is_file() and path.name in HF_WEIGHTS:
            meta[key] = json.loads((path.parent / name).read_text())
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path), meta
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PretrainedError(f"{path}: not a loadable weights file ({e})") from e
    if is_checkpoint(obj):  # written by cmkd (any schema version)
        weights, _, checkpoint = parse(obj, path)
        return weights, {"checkpoint": checkpoint}
    if meta:
        return obj, meta
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            if isinstance(obj.get("cfg"), dict):
                meta["config"] = obj["cfg"]  # the file's own description of its network (BEATs')
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedError(f"{path}: expected a state dict of tensors")
    return obj, meta


def load_pretrained(model: nn.Module, path: Path) -> dict:
    """Load `path` into `model` in place; returns {"loaded": keys, "initialised": keys left at their init,
    "source": what a cmkd checkpoint says it was trained on (classes, normalisation; None for other files)}.

    Anything but the classifier head left unmatched, a key the model does not have, or a shape that does not fit
    is an error naming the keys.
    """
    path = Path(path)
    sd, meta = read_state_dict(path)
    sd = model.family.pretrained_state(model, sd, meta, path)  # the family's own adapter, in its file

    own = model.state_dict()
    head = {k for k in own if k.startswith("head.")}
    for k in head & set(sd):  # keep the head only when it fits (same class count)
        if sd[k].shape != own[k].shape:
            del sd[k]
    unknown = sorted(set(sd) - set(own))
    missing = sorted(set(own) - set(sd) - head)
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in sd
             if k in own and sd[k].shape != own[k].shape]
    if unknown or missing or wrong:
        details = "; ".join(part for part in (
            unknown and f"keys the model does not have: {', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}",
            missing and f"weights the file lacks: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}",
            wrong and f"shapes that differ (file vs model): {', '.join(wrong[:8])}",
        ) if part)
        raise PretrainedError(f"{path} does not fit {type(model).__name__}: {details}")
    model.load_state_dict(sd, strict=False)
    ckpt = meta.get("checkpoint")
    return {"loaded": sorted(sd), "initialised": sorted(set(own) - set(sd)),
            "source": {"path": str(path), "checkpoint": ckpt, "classes": ckpt and ckpt.classes,
                       "normalization": ckpt and ckpt.input_normalization, "num_frames": ckpt and ckpt.num_frames}}
