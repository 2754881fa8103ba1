"""Audio Spectrogram Transformer (Gong et al. 2021) on timm's DeiT.

A DeiT (cls + distillation tokens) with one input channel and overlapping 16x16 patches: stride `fstride` over
frequency and `tstride` over time (10 and 10 in the paper, so 12 x 101 = 1212 patches for 1024 frames). The
output is the mean of the cls and distillation tokens after the final norm, then LayerNorm and Linear.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from pydantic import Field
from timm.layers import PatchEmbed
from timm.models.deit import VisionTransformerDistilled

from . import ModelConfig, register_model


class ASTConfig(ModelConfig):
    fstride: int = Field(10, ge=1, le=16)  # patch strides over frequency and time (10 and 10 in the paper)
    tstride: int = Field(10, ge=1, le=16)


class OverlappingPatchEmbed(PatchEmbed):
    """timm's PatchEmbed with a stride smaller than the patch, so neighbouring patches overlap."""

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


class AST(nn.Module):
    def __init__(self, num_classes: int, num_frames: int, num_mel_bins: int = 128, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, fstride: int = 10, tstride: int = 10, patch_size: int = 16):
        super().__init__()
        if num_frames < patch_size or num_mel_bins < patch_size:
            raise ValueError(f"AST needs at least {patch_size} frames and mel bins, got {num_frames}x{num_mel_bins}")
        self.v = VisionTransformerDistilled(
            img_size=(num_mel_bins, num_frames), patch_size=patch_size, in_chans=1, num_classes=0,
            embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            embed_layer=partial(OverlappingPatchEmbed, stride=(fstride, tstride)),
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


# DeiT widths; `test` is a tiny configuration for CPU runs and tests.
SIZES = {
    "test": dict(embed_dim=64, depth=2, num_heads=2),
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
}
for _size, _dims in SIZES.items():
    register_model(f"ast_{_size}", partial(AST, **_dims), ASTConfig)
