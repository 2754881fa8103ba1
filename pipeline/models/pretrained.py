"""Starting a model from weights in a local file (nothing is downloaded).

Accepted files: a timm ImageNet checkpoint (`.pth`/`.pt`/`.bin` state dict, or `.safetensors`) of the matching
family, or a checkpoint this project wrote (any class count, any number of frames). The adaptations are AST's:
- AST from DeiT: patch-embedding kernels summed over the RGB channels; the position-embedding grid (24x24 for
  the 384-pixel DeiT that AST starts from, 14x14 at 224) cropped from its centre or bilinearly interpolated, per
  axis, to the new (frequency, time) grid.
- AST from an AST: the position-embedding grid adapted the same way (in time, for another number of frames).
- EfficientNet from ImageNet: the stem's three input-channel kernels averaged into one.
The classifier is always re-initialised when the class count differs, and never copied from ImageNet.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ast import AST
from .efficientnet import EfficientNetAudio


class PretrainedError(ValueError):
    pass


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state dict, metadata); metadata is the rest of a cmkd checkpoint, else empty."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"{path}: pretrained weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path), {}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PretrainedError(f"{path}: not a loadable weights file ({e})") from e
    if isinstance(obj, dict) and "model" in obj and "model_config" in obj:  # written by cmkd
        return obj["model"], {k: v for k, v in obj.items() if k != "model"}
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedError(f"{path}: expected a state dict of tensors")
    return obj, {}


def adapt_grid(pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """[1, h*w, D] position embeddings on old_grid -> new_grid: each axis centre-cropped if it shrinks,
    bilinearly interpolated if it grows (AST's rule)."""
    (h, w), (new_h, new_w) = old_grid, new_grid
    grid = pos.reshape(1, h, w, -1).permute(0, 3, 1, 2)  # [1, D, h, w]
    if new_w <= w:
        grid = grid[:, :, :, w // 2 - new_w // 2 : w // 2 - new_w // 2 + new_w]
    else:
        grid = F.interpolate(grid, size=(h, new_w), mode="bilinear")
    if new_h <= h:
        grid = grid[:, :, h // 2 - new_h // 2 : h // 2 - new_h // 2 + new_h, :]
    else:
        grid = F.interpolate(grid, size=(new_h, new_w), mode="bilinear")
    return grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, -1)


def _ast_state(model: AST, sd: dict[str, torch.Tensor], meta: dict, path: Path) -> dict[str, torch.Tensor]:
    if "v.pos_embed" in sd:  # an AST this project trained
        sd = dict(sd)
        cfg = meta.get("model_config", {})
        fstride, tstride = cfg.get("fstride", 10), cfg.get("tstride", 10)
        old_grid = ((meta["num_mel_bins"] - 16) // fstride + 1, (meta["num_frames"] - 16) // tstride + 1)
    else:  # a timm DeiT (ImageNet): no `v.` prefix, RGB patch kernels, square grid
        if "dist_token" not in sd:
            raise PretrainedError(f"{path}: not a DeiT (distilled) checkpoint: no dist_token; AST needs cls and "
                                  f"distillation tokens")
        sd = {f"v.{k}": v for k, v in sd.items() if not k.startswith(("head.", "head_dist."))}
        sd["v.patch_embed.proj.weight"] = sd["v.patch_embed.proj.weight"].sum(dim=1, keepdim=True)
        side = math.isqrt(sd["v.pos_embed"].shape[1] - 2)
        old_grid = (side, side)
    pos = sd["v.pos_embed"]
    if pos.shape[-1] != model.v.pos_embed.shape[-1]:
        raise PretrainedError(f"{path}: embedding width {pos.shape[-1]} does not fit this model's "
                              f"{model.v.pos_embed.shape[-1]} (choose the matching ast size)")
    if old_grid[0] * old_grid[1] + 2 != pos.shape[1]:
        raise PretrainedError(f"{path}: {pos.shape[1]} position embeddings do not form a {old_grid} grid")
    sd["v.pos_embed"] = torch.cat([pos[:, :2], adapt_grid(pos[:, 2:], old_grid, model.grid_size)], dim=1)
    return sd


def _efficientnet_state(model: EfficientNetAudio, sd: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    if any(k.startswith("backbone.") for k in sd):  # an EfficientNet this project trained
        return dict(sd)
    if "conv_stem.weight" not in sd:
        raise PretrainedError(f"{path}: not an EfficientNet checkpoint: no conv_stem.weight")
    sd = {f"backbone.{k}": v for k, v in sd.items() if not k.startswith("classifier.")}
    stem = sd["backbone.conv_stem.weight"]
    if stem.shape[1] == 3:
        sd["backbone.conv_stem.weight"] = stem.mean(dim=1, keepdim=True)
    return sd


def load_pretrained(model: nn.Module, path: Path) -> dict[str, list[str]]:
    """Load `path` into `model` in place; returns {"loaded": keys, "initialised": keys left at their init}.

    Anything but the classifier head left unmatched, a key the model does not have, or a shape that does not fit
    is an error naming the keys.
    """
    path = Path(path)
    sd, meta = read_state_dict(path)
    if isinstance(model, AST):
        sd = _ast_state(model, sd, meta, path)
    elif isinstance(model, EfficientNetAudio):
        sd = _efficientnet_state(model, sd, path)
    else:
        raise PretrainedError(f"no pretrained-weight adapter for {type(model).__name__}")

    own = model.state_dict()
    head = {k for k in own if k.startswith("head.")}
    for k in head & set(sd):  # keep the head only when it fits (same class count)
        if sd[k].shape != own[k].shape:
            del sd[k]
    unknown = sorted(set(sd) - set(own))
    missing = sorted(set(own) - set(sd) - head)
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in sd if k in own and sd[k].shape != own[k].shape]
    if unknown or missing or wrong:
        details = "; ".join(part for part in (
            unknown and f"keys the model does not have: {', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}",
            missing and f"weights the file lacks: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}",
            wrong and f"shapes that differ (file vs model): {', '.join(wrong[:8])}",
        ) if part)
        raise PretrainedError(f"{path} does not fit {type(model).__name__}: {details}")
    model.load_state_dict(sd, strict=False)
    return {"loaded": sorted(sd), "initialised": sorted(set(own) - set(sd))}
