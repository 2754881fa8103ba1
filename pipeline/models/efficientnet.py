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
    # mean: the CMKD CNN; attention: PSLA's 4 heads over time, giving logits; psla: PSLA's head exactly (sigmoid
    # class scores, learnt head weights), its probabilities returned as logits (what a PSLA checkpoint loads into)
    pooling: Literal["mean", "attention", "psla"] = "mean"
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


class PSLAAttentionPool(nn.Module):
    """PSLA's MHeadAttention: per head a sigmoid attention over time and sigmoid class scores, the heads summed with
    learnt weights; PSLA outputs that probability, this returns its logit, so the same losses apply."""

    def __init__(self, channels: int, num_classes: int, num_heads: int = 4):
        super().__init__()
        self.att = nn.ModuleList(nn.Conv1d(channels, num_classes, 1) for _ in range(num_heads))
        self.cla = nn.ModuleList(nn.Conv1d(channels, num_classes, 1) for _ in range(num_heads))
        self.head_weight = nn.Parameter(torch.full((num_heads,), 1.0 / num_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        p = 0
        for i, (att, cla) in enumerate(zip(self.att, self.cla)):
            weight = torch.sigmoid(att(x)).clamp(1e-7, 1 - 1e-7)
            weight = weight / weight.sum(dim=2, keepdim=True)
            p = p + (weight * torch.sigmoid(cla(x))).sum(dim=2) * self.head_weight[i]
        return torch.logit(p.clamp(1e-7, 1 - 1e-7))


class EfficientNetAudio(nn.Module):
    prefers_channels_last = True  # cuDNN's depthwise and 1x1 convolutions run faster in NHWC
    ecosystem_folder = "timm"     # `cmkd export --format folder`: timm's own hub layout (to_timm)

    def __init__(self, num_classes: int, num_frames: int, num_mel_bins: int = 128, timm_name: str = "efficientnet_b2",
                 pooling: str = "mean", drop_rate: float = 0.0):
        super().__init__()
        import timm  # here, not at the top: importing it takes seconds that params validation need not pay

        self.timm_name = timm_name
        self.backbone = timm.create_model(timm_name, pretrained=False, in_chans=1, num_classes=0, global_pool="",
                                          drop_rate=drop_rate)
        channels = self.backbone.num_features
        self.pooling = pooling
        if pooling == "mean":
            self.head = nn.Linear(channels, num_classes)
        elif pooling == "attention":
            self.head = AttentionPool(channels, num_classes)
        elif pooling == "psla":
            self.head = PSLAAttentionPool(channels, num_classes)
        else:
            raise ValueError(f"pooling must be 'mean', 'attention' or 'psla', got {pooling!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).unsqueeze(1)  # [B, T, F] -> [B, 1, F, T]
        fmap = self.backbone.forward_features(x)  # [B, C, F', T']
        if self.pooling == "mean":
            return self.head(fmap.mean(dim=(2, 3)))
        return self.head(fmap.mean(dim=2))

    def pretrained_state(self, sd: dict[str, torch.Tensor], meta: dict, path: Path) -> dict[str, torch.Tensor]:
        """A weights file's state dict in this model's keys (pipeline/models/pretrained.py loads it): an
        EfficientNet this project trained as is; PSLA's (`efficientnet_pytorch` layout under `module.effnet.`, its
        attention head under `module.attention.`) block by block onto timm's names; a timm ImageNet one with its
        stem's RGB kernels averaged into one input channel and its classifier left out."""
        if any(k.startswith("backbone.") for k in sd):  # an EfficientNet this project trained
            return dict(sd)
        if is_psla(sd):
            return psla_to_cmkd(sd, [len(stage) for stage in self.backbone.blocks], path)
        if "conv_stem.weight" not in sd:
            raise PretrainedError(f"{path}: not an EfficientNet checkpoint: no conv_stem.weight")
        sd = {f"backbone.{k}": v for k, v in sd.items() if not k.startswith("classifier.")}
        stem = sd["backbone.conv_stem.weight"]
        if stem.shape[1] == 3:
            sd["backbone.conv_stem.weight"] = stem.mean(dim=1, keepdim=True)
        return sd


    def to_timm(self) -> torch.nn.Module:
        """The same network as timm's own model (`cmkd export --format timm`): timm's EfficientNet with one input
        channel, average pooling and a linear classifier is exactly the CMKD CNN (`pooling: mean`); it takes the
        normalised fbank as an image [batch, 1, mel bins, frames] and gives the same logits."""
        import timm

        if self.pooling != "mean":
            raise PretrainedError(f"pooling {self.pooling!r} is not a timm model (timm's EfficientNet pools by the "
                                  "mean); export this model as ONNX or TorchScript instead")
        model = timm.create_model(self.timm_name, pretrained=False, in_chans=1, num_classes=self.head.out_features)
        weights = {k.removeprefix("backbone."): v for k, v in self.state_dict().items() if k.startswith("backbone.")}
        weights.update({"classifier.weight": self.head.weight, "classifier.bias": self.head.bias})
        model.load_state_dict(weights)
        return model.eval()


def is_psla(sd: dict) -> bool:
    return any(k.removeprefix("module.").startswith("effnet._conv_stem.") for k in sd)


# efficientnet_pytorch's MBConv block -> timm's: an expanding block (InvertedResidual) and, where the expansion is
# 1 (the first stage), a DepthwiseSeparableConv
EXPANDING = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3"}
DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
             "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
STEM_AND_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


def psla_to_cmkd(sd: dict, stage_depths: list[int], path: Path) -> dict:
    """A PSLA EfficientNet state dict in cmkd's keys: efficientnet_pytorch's flat `_blocks.i` onto timm's
    `blocks.stage.j` in order, the attention head's 1x1 Conv2d kernels as Conv1d."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    where = [(s, j) for s, depth in enumerate(stage_depths) for j in range(depth)]
    count = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("effnet._blocks."))
    if count != len(where):
        raise PretrainedError(f"{path}: {count} blocks, this EfficientNet has {len(where)} (choose the matching "
                              "tf_efficientnet_b* size)")
    out = {}
    for key, value in sd.items():
        if key.startswith("effnet._fc."):
            continue  # PSLA replaces the classifier by its attention head
        if key.startswith("effnet._blocks."):
            _, _, i, layer, *rest = key.split(".")
            stage, j = where[int(i)]
            names = EXPANDING if f"effnet._blocks.{i}._expand_conv.weight" in sd else DEPTHWISE
            out[".".join([f"backbone.blocks.{stage}.{j}", names[layer], *rest])] = value
        elif key.startswith("effnet."):
            layer, *rest = key.removeprefix("effnet.").split(".")
            out[".".join(["backbone", STEM_AND_HEAD[layer], *rest])] = value
        elif key == "attention.head_weight":
            out["head.head_weight"] = value
        elif key.startswith("attention."):
            out["head." + key.removeprefix("attention.")] = value.flatten(2) if value.dim() == 4 else value
        else:
            raise PretrainedError(f"{path}: unexpected key {key!r} in a PSLA checkpoint")
    return out


# (blocks, head channels) of each size, as efficientnet_pytorch and timm build them
PSLA_SIZES = {(16, 1280): 0, (23, 1280): 1, (23, 1408): 2, (26, 1536): 3, (32, 1792): 4, (39, 2048): 5,
              (45, 2304): 6, (55, 2560): 7}
PSLA_FRAMES = 1056  # PSLA's AudioSet input length; the CNN takes any length, a file does not record it


def describe_checkpoint(sd: dict, meta: dict, path: Path, frames: int | None = None) -> dict | None:
    """What `cmkd convert` needs to rebuild a PSLA EfficientNet (pipeline/models/convert.py); None if `sd` is not
    one. The tf_ variant: efficientnet_pytorch pads like TensorFlow ("same") with BatchNorm eps 1e-3, as timm's
    tf_efficientnet_* do (identical padding for even feature-map sizes at every stride-2 layer: 128 mel bins,
    and frame counts divisible by 32). PSLA normalises by std, not 2 std: stored as std / 2."""
    if not is_psla(sd):
        return None
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    blocks = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("effnet._blocks."))
    size = PSLA_SIZES.get((blocks, sd["effnet._conv_head.weight"].shape[0]))
    if size is None:
        raise PretrainedError(f"{path}: a PSLA EfficientNet of {blocks} blocks matches no size b0..b7")
    if "attention.att.0.weight" not in sd:
        raise PretrainedError(f"{path}: a PSLA EfficientNet without its attention head (attention.att.*)")
    return {"format": "psla", "name": f"tf_efficientnet_b{size}", "architecture": "cnn",
            "model": {"pooling": "psla"}, "num_frames": frames or PSLA_FRAMES, "num_mel_bins": 128,
            "num_classes": sd["attention.att.0.weight"].shape[0], "classes": None,
            "normalization": {"mean": -4.6476, "std": 4.5699 / 2}}


register_model("efficientnet_test", partial(EfficientNetAudio, timm_name="test_efficientnet"), EfficientNetConfig)
for _b in range(8):
    register_model(f"efficientnet_b{_b}", partial(EfficientNetAudio, timm_name=f"efficientnet_b{_b}"),
                   EfficientNetConfig)
    # TensorFlow "same" padding and BatchNorm eps 1e-3: what PSLA's efficientnet_pytorch checkpoints load into
    register_model(f"tf_efficientnet_b{_b}", partial(EfficientNetAudio, timm_name=f"tf_efficientnet_b{_b}"),
                   EfficientNetConfig)
