"""EfficientNet (timm) for spectrograms: one input channel, then a pooling head.

`pooling="mean"`: the CMKD CNN, the last feature map averaged over time and frequency, then Linear.
`pooling="attention"`: PSLA's head, frequency averaged, then 4 attention heads over time, each with its own
attention and classification 1x1 convolutions; head outputs averaged. PSLA squashes the class scores with a
sigmoid; here they stay logits so that the same losses (sigmoid/BCE or softmax/CE) apply to every model.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from . import ModelConfig, PretrainedError, register_model


class EfficientNetConfig(ModelConfig):
    pooling: Literal["mean", "attention"] = "mean"  # mean: the CMKD CNN; attention: PSLA's 4 heads over time
    drop_rate: float = Field(0.0, ge=0, lt=1)


class AttentionPool(nn.Module):
    def __init__(self, channels: int, num_classes: int, num_heads: int = 4):
        super().__init__()
        self.att = nn.ModuleList(nn.Conv1d(channels, num_classes, 1) for _ in range(num_heads))
        self.cla = nn.ModuleList(nn.Conv1d(channels, num_classes, 1) for _ in range(num_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        heads = []
        for att, cla in zip(self.att, self.cla):
            weight = torch.sigmoid(att(x)).clamp(1e-7, 1 - 1e-7)
            weight = weight / weight.sum(dim=2, keepdim=True)
            heads.append((weight * cla(x)).sum(dim=2))
        return torch.stack(heads).mean(dim=0)


class EfficientNetAudio(nn.Module):
    prefers_channels_last = True  # cuDNN's depthwise and 1x1 convolutions run faster in NHWC

    def __init__(self, num_classes: int, num_frames: int, num_mel_bins: int = 128, timm_name: str = "efficientnet_b2",
                 pooling: str = "mean", drop_rate: float = 0.0):
        super().__init__()
        import timm  # here, not at the top: importing it takes seconds that params validation need not pay

        self.backbone = timm.create_model(timm_name, pretrained=False, in_chans=1, num_classes=0, global_pool="",
                                          drop_rate=drop_rate)
        channels = self.backbone.num_features
        self.pooling = pooling
        if pooling == "mean":
            self.head = nn.Linear(channels, num_classes)
        elif pooling == "attention":
            self.head = AttentionPool(channels, num_classes)
        else:
            raise ValueError(f"pooling must be 'mean' or 'attention', got {pooling!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).unsqueeze(1)  # [B, T, F] -> [B, 1, F, T]
        fmap = self.backbone.forward_features(x)  # [B, C, F', T']
        if self.pooling == "mean":
            return self.head(fmap.mean(dim=(2, 3)))
        return self.head(fmap.mean(dim=2))

    def pretrained_state(self, sd: dict[str, torch.Tensor], meta: dict, path: Path) -> dict[str, torch.Tensor]:
        """A weights file's state dict in this model's keys (pipeline/models/pretrained.py loads it): an
        EfficientNet this project trained as is; a timm ImageNet one with its stem's RGB kernels averaged into one
        input channel and its classifier left out."""
        if any(k.startswith("backbone.") for k in sd):  # an EfficientNet this project trained
            return dict(sd)
        if "conv_stem.weight" not in sd:
            raise PretrainedError(f"{path}: not an EfficientNet checkpoint: no conv_stem.weight")
        sd = {f"backbone.{k}": v for k, v in sd.items() if not k.startswith("classifier.")}
        stem = sd["backbone.conv_stem.weight"]
        if stem.shape[1] == 3:
            sd["backbone.conv_stem.weight"] = stem.mean(dim=1, keepdim=True)
        return sd


register_model("efficientnet_test", partial(EfficientNetAudio, timm_name="test_efficientnet"), EfficientNetConfig)
for _b in range(8):
    register_model(f"efficientnet_b{_b}", partial(EfficientNetAudio, timm_name=f"efficientnet_b{_b}"),
                   EfficientNetConfig)
