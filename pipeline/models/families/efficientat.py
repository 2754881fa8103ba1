"""EfficientAT's MobileNets (Schmid et al. 2023, github.com/fschmid56/EfficientAT): the small CNNs that AudioSet is
distilled into there (mn04: mAP 0.432 with 1 M parameters, mn10: 0.471), here a CMKD student or teacher.

The network is torchvision's MobileNetV3-Large as EfficientAT adapts it to one-channel spectrograms [batch, 1, mel
bins, frames]: a 3x3 stride-2 stem, fifteen inverted residual blocks (1x1 expansion, depthwise k x k, channel
squeeze-excitation where MobileNetV3 has it, 1x1 projection; Hardswish or ReLU; BatchNorm eps 1e-3), a 1x1
convolution to 6x the last block's channels, then a head: `mlp` (pool, Linear to 1280 x width, Hardswish, dropout,
Linear: the released models'), `attention` (PSLA's multi-head attention over time, frequency averaged) or
`fully_convolutional` (1x1 convolution to the classes, BatchNorm, pool). Widths scale every layer's channels
(rounded to multiples of 8): mn04 0.4 ... mn40 4.0. Parameter names follow EfficientAT's, so its released files
(`mn10_as_mAP_471.pt`: plain state dicts) load as they are; `cmkd convert` reads them. Its front-end is EfficientAT's
own 32 kHz mel (pipeline/features/efficientat.py): a store of its own.

Written from the paper and torchvision's description of MobileNetV3, checked against EfficientAT's code
(tests/test_efficientat.py: the same logits from the same audio); no line of that code is copied here.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from .. import Family, ModelConfig, PretrainedError, register_family

WIDTHS = {"mn04": 0.4, "mn05": 0.5, "mn10": 1.0, "mn20": 2.0, "mn30": 3.0, "mn40": 4.0, "test": 0.1}
# MobileNetV3-Large: (in, kernel, expanded, out, squeeze-excitation, Hardswish, stride of the block at C1..C4)
BLOCKS = ((16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
          (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
          (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
          (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
          (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1))
HEADS = {"mlp": "mlp", "attention": "multihead_attention_pooling", "fully_convolutional": "fully_convolutional"}


def divisible(value: float, by: int = 8) -> int:
    """`value` rounded to a multiple of `by`, never below `by` nor more than 10 % under it (MobileNet's rule)."""
    rounded = max(by, int(value + by / 2) // by * by)
    return rounded + by if rounded < 0.9 * value else rounded


class EfficientATConfig(ModelConfig):
    head: Literal["mlp", "attention", "fully_convolutional"] = "mlp"
    attention_heads: int = Field(4, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act=nn.Hardswish) -> nn.Sequential:
    """Conv2d (no bias, 'same' padding) + BatchNorm (eps 1e-3, momentum 0.01) + the activation, if any."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=0.001, momentum=0.01)]
    return nn.Sequential(*layers, *([act()] if act is not None else []))


class ChannelExcitation(nn.Module):
    """Squeeze-excitation over channels: the feature map's channel means through a ReLU bottleneck to a sigmoid
    scale per channel."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, squeeze), nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * scale[:, :, None, None]


class Excitations(nn.Module):
    """EfficientAT's container of concurrent excitations (here the one over channels), kept for its parameter
    names."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.conc_se_layers = nn.ModuleList([ChannelExcitation(channels, squeeze)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, excite: bool, hardswish: bool, stride: int,
                 squeeze_ratio: int = 4):
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        layers = [conv_bn(cin, expanded, act=act)] if expanded != cin else []
        layers.append(conv_bn(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if excite:
            layers.append(Excitations(expanded, divisible(expanded // squeeze_ratio)))
        layers.append(conv_bn(expanded, cout, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


class AttentionHead(nn.Module):
    """PSLA's multi-head attention pooling as EfficientAT words it: frequency averaged; per time step one linear
    map to each head's attention (sigmoid, normalised over time) and class values; the heads weighted and summed."""

    def __init__(self, channels: int, num_classes: int, heads: int = 4):
        super().__init__()
        self.heads, self.num_classes = heads, num_classes
        self.subspace_proj = nn.Linear(channels, num_classes * 2 * heads)
        self.head_weight = nn.Parameter(torch.full((1, heads, 1), 1.0 / heads))

    def frame_scores(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention [B, heads, T, classes] normalised over time, values [B, heads, T, classes])."""
        x = fmap.mean(dim=2).transpose(1, 2)  # [B, T, C]
        b, t, _ = x.shape
        att, val = self.subspace_proj(x).reshape(b, t, 2, self.heads, self.num_classes).permute(2, 0, 3, 1, 4)
        att = torch.sigmoid(att).clamp(1e-7, 1 - 1e-7)
        return att / att.sum(dim=2, keepdim=True), val

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        att, val = self.frame_scores(fmap)
        return ((att * val).sum(dim=2) * self.head_weight).sum(dim=1)

    def frame_logits(self, fmap: torch.Tensor) -> torch.Tensor:
        """[B, T', classes]: each time step's values, the heads weighted as for the clip."""
        _, val = self.frame_scores(fmap)
        return (val * self.head_weight[..., None]).sum(dim=1)


class MobileNet(nn.Module):
    def __init__(self, num_classes: int, num_frames: int, num_mel_bins: int = 128, width: float = 1.0,
                 head: str = "mlp", attention_heads: int = 4, dropout: float = 0.2):
        super().__init__()
        scale = partial(lambda c, w: divisible(c * w), w=width)
        blocks = [(scale(cin), k, scale(exp), scale(cout), se, hs, s) for cin, k, exp, cout, se, hs, s in BLOCKS]
        last = 6 * blocks[-1][3]
        self.features = nn.Sequential(conv_bn(1, blocks[0][0], 3, 2), *(InvertedResidual(*b) for b in blocks),
                                      conv_bn(blocks[-1][3], last))
        self.head_type = head
        if head == "mlp":
            hidden = scale(1280)
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(last, hidden),
                                            nn.Hardswish(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        elif head == "attention":
            self.classifier = AttentionHead(last, num_classes, attention_heads)
        elif head == "fully_convolutional":
            self.classifier = nn.Sequential(nn.Conv2d(last, num_classes, 1, bias=False), nn.BatchNorm2d(num_classes),
                                            nn.AdaptiveAvgPool2d(1))
        else:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.features(x.transpose(1, 2).unsqueeze(1))  # [B, T, F] -> [B, 1, F, T]
        return self.classifier(fmap).flatten(1)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, T', classes]: the head at every time step of the last feature map, frequency pooled
        (the mlp and fully convolutional heads pool before or after their maps; here only over frequency)."""
        fmap = self.features(x.transpose(1, 2).unsqueeze(1))
        if self.head_type == "attention":
            return self.classifier.frame_logits(fmap)
        if self.head_type == "mlp":
            return self.classifier[2:](fmap.mean(dim=2).transpose(1, 2))
        conv, norm, _ = self.classifier
        return norm(conv(fmap)).mean(dim=2).transpose(1, 2)


def released_shapes(width: float, head: str, num_classes: int, heads: int = 4) -> dict:
    """The parameter shapes of a model of this width and head (what a released file is matched against)."""
    model = MobileNet(num_classes, 100, width=width, head=head, attention_heads=heads)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def head_of(sd: dict) -> tuple[str, int, int]:
    """(head, classes, attention heads) of a state dict in EfficientAT's layout."""
    if "classifier.5.weight" in sd:
        return "mlp", sd["classifier.5.weight"].shape[0], 4
    if "classifier.subspace_proj.weight" in sd:
        heads = sd["classifier.head_weight"].shape[1]
        return "attention", sd["classifier.subspace_proj.weight"].shape[0] // (2 * heads), heads
    if "classifier.1.running_mean" in sd:
        return "fully_convolutional", sd["classifier.0.weight"].shape[0], 4
    raise PretrainedError("an EfficientAT MobileNet without one of its heads (classifier.5, classifier.subspace_proj "
                          "or classifier.0/1)")


def is_efficientat(sd: dict) -> bool:
    return "features.0.0.weight" in sd and "features.16.0.weight" in sd and sd["features.0.0.weight"].shape[1] == 1


class EfficientAT(Family):
    name, kind = "efficientat", "cnn"
    config = EfficientATConfig
    frontend = "efficientat"
    converts = "EfficientAT's MobileNets (mn04_as ... mn40_as .pt state dicts)"
    card_tags = ("efficientat", "mobilenetv3")
    bench_models = {"tiny": "efficientat_test", "cpu": "efficientat_mn04", "gpu": "efficientat_mn10"}
    bench_batch = {"tiny": 8, "cpu": 16, "gpu": 96}
    export_models = {"tiny": "efficientat_test", "cpu": "efficientat_mn10", "gpu": "efficientat_mn10"}

    def __init__(self):
        super().__init__()
        self.models = {f"efficientat_{size}": partial(MobileNet, width=w) for size, w in WIDTHS.items()}

    def pretrained_state(self, model, sd, meta, path):
        if "checkpoint" in meta:
            return dict(sd)
        if not is_efficientat(sd):
            raise PretrainedError(f"{path}: not an EfficientAT MobileNet (no features.0.0 / features.16 in one "
                                  "channel)")
        return dict(sd)

    def describe_checkpoint(self, sd, meta, path: Path, frames):
        if "checkpoint" in meta or not is_efficientat(sd):
            return None
        head, classes, heads = head_of(sd)
        shapes = {k: tuple(v.shape) for k, v in sd.items()}
        size = next((s for s, w in WIDTHS.items() if released_shapes(w, head, classes, heads) == shapes), None)
        if size is None:
            raise PretrainedError(f"{path}: an EfficientAT MobileNet of no released width ({', '.join(WIDTHS)})")
        return {"format": "efficientat", "name": f"efficientat_{size}", "architecture": self.name,
                "model": {"head": head, "attention_heads": heads}, "num_frames": frames or 1000,  # its 10 s
                "num_classes": classes, "classes": None}


register_family(EfficientAT())
