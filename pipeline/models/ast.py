"""Audio Spectrogram Transformer (Gong et al. 2021) on timm's DeiT.

A DeiT (cls + distillation tokens) with one input channel and overlapping 16x16 patches: stride `fstride` over
frequency and `tstride` over time (10 and 10 in the paper, so 12 x 101 = 1212 patches for 1024 frames). The
output is the mean of the cls and distillation tokens after the final norm, then LayerNorm and Linear.
"""
from __future__ import annotations

import math
from functools import lru_cache, partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from . import ModelConfig, PretrainedError, register_model


class ASTConfig(ModelConfig):
    fstride: int = Field(10, ge=1, le=16)  # patch strides over frequency and time (10 and 10 in the paper)
    tstride: int = Field(10, ge=1, le=16)


@lru_cache(maxsize=None)
def overlapping_patch_embed() -> type:
    """timm's PatchEmbed with a stride smaller than the patch, so neighbouring patches overlap (made on first use:
    importing timm takes seconds, which params validation and the stages that build no model need not pay)."""
    from timm.layers import PatchEmbed

    class OverlappingPatchEmbed(PatchEmbed):
        def __init__(self, *args, stride: tuple[int, int], **kwargs):
            super().__init__(*args, **kwargs)
            self.stride = tuple(stride)
            self.proj = nn.Conv2d(self.proj.in_channels, self.proj.out_channels, kernel_size=self.patch_size,
                                  stride=self.stride, bias=self.proj.bias is not None,
                                  device=self.proj.weight.device, dtype=self.proj.weight.dtype)
            self.grid_size = tuple((size - patch) // step + 1
                                   for size, patch, step in zip(self.img_size, self.patch_size, self.stride))
            self.num_patches = self.grid_size[0] * self.grid_size[1]

        def feat_ratio(self, as_scalar=True):
            return max(self.stride) if as_scalar else self.stride

    return OverlappingPatchEmbed


class AST(nn.Module):
    def __init__(self, num_classes: int, num_frames: int, num_mel_bins: int = 128, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, fstride: int = 10, tstride: int = 10, patch_size: int = 16):
        super().__init__()
        if num_frames < patch_size or num_mel_bins < patch_size:
            raise ValueError(f"AST needs at least {patch_size} frames and mel bins, got {num_frames}x{num_mel_bins}")
        from timm.models.deit import VisionTransformerDistilled

        self.v = VisionTransformerDistilled(
            img_size=(num_mel_bins, num_frames), patch_size=patch_size, in_chans=1, num_classes=0,
            embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            embed_layer=partial(overlapping_patch_embed(), stride=(fstride, tstride)),
        )
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))

    @property
    def grid_size(self) -> tuple[int, int]:
        """(frequency, time) patches."""
        return self.v.patch_embed.grid_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).unsqueeze(1)  # [B, T, F] -> [B, 1, F, T]: frequency is the image height
        tokens = self.v.forward_features(x)
        return self.head((tokens[:, 0] + tokens[:, 1]) / 2)

    def pretrained_state(self, sd: dict[str, torch.Tensor], meta: dict, path: Path) -> dict[str, torch.Tensor]:
        """A weights file's state dict in this model's keys and shapes (pipeline/models/pretrained.py loads it).

        From a timm DeiT (ImageNet): the patch kernels summed over the RGB channels; the position-embedding grid
        (24x24 for the 384-pixel DeiT that AST starts from, 14x14 at 224) adapted to this (frequency, time) grid.
        From an AST this project trained: the grid adapted the same way (in time, for another number of frames).
        """
        if "v.pos_embed" in sd:  # an AST this project trained
            sd = dict(sd)
            cfg = meta.get("model_config", {})
            fstride, tstride = cfg.get("fstride", 10), cfg.get("tstride", 10)
            old_grid = ((meta["num_mel_bins"] - 16) // fstride + 1, (meta["num_frames"] - 16) // tstride + 1)
        else:  # a timm DeiT (ImageNet): no `v.` prefix, RGB patch kernels, square grid
            if "dist_token" not in sd:
                raise PretrainedError(f"{path}: not a DeiT (distilled) checkpoint: no dist_token; AST needs cls "
                                      f"and distillation tokens")
            sd = {f"v.{k}": v for k, v in sd.items() if not k.startswith(("head.", "head_dist."))}
            sd["v.patch_embed.proj.weight"] = sd["v.patch_embed.proj.weight"].sum(dim=1, keepdim=True)
            side = math.isqrt(sd["v.pos_embed"].shape[1] - 2)
            old_grid = (side, side)
        pos = sd["v.pos_embed"]
        if pos.shape[-1] != self.v.pos_embed.shape[-1]:
            raise PretrainedError(f"{path}: embedding width {pos.shape[-1]} does not fit this model's "
                                  f"{self.v.pos_embed.shape[-1]} (choose the matching ast size)")
        if old_grid[0] * old_grid[1] + 2 != pos.shape[1]:
            raise PretrainedError(f"{path}: {pos.shape[1]} position embeddings do not form a {old_grid} grid")
        sd["v.pos_embed"] = torch.cat([pos[:, :2], adapt_grid(pos[:, 2:], old_grid, self.grid_size)], dim=1)
        return sd


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


# DeiT widths; `test` is a tiny configuration for CPU runs and tests.
SIZES = {
    "test": dict(embed_dim=64, depth=2, num_heads=2),
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
}
for _size, _dims in SIZES.items():
    register_model(f"ast_{_size}", partial(AST, **_dims), ASTConfig)
