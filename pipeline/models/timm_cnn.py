"""A timm image CNN on spectrograms, shared by the CNN families (families/efficientnet.py, families/mobilenetv3.py).

The backbone is timm's own network with one input channel, its features pooled by a head:
`pooling="mean"`: the CMKD CNN, the last feature map averaged over time and frequency, then Linear (exactly timm's
own classifier, so the model leaves as a timm folder); `pooling="attention"`: PSLA's head, frequency averaged,
then 4 attention heads over time, each with its own attention and classification 1x1 convolutions, averaged;
`pooling="psla"`: PSLA's head exactly (sigmoid class scores, learnt head weights), its probabilities returned as
logits. PSLA squashes the class scores with a sigmoid; here they stay logits so that the same losses apply.

ImageNet weights: a 3-channel stem becomes one channel by summing its kernels over RGB, as timm's
`adapt_input_conv` and the AST code do: the one-channel network then computes what the RGB network computes on the
spectrogram repeated in all three channels, so the pretrained activations keep their scale (averaging would divide
the stem's output by 3 before a BatchNorm whose statistics were measured at full scale).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from . import Family, ModelConfig, PretrainedError


class TimmCNNConfig(ModelConfig):
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

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T] -> [B, T, classes]
        """Each time step's class values, the heads averaged: what the attention weighs into the clip's logits."""
        return torch.stack([cla(x) for cla in self.cla]).mean(dim=0).transpose(1, 2)


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

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T] -> [B, T, classes]
        """Each time step's class probability, the heads weighted as for the clip, as a logit."""
        p = sum(torch.sigmoid(cla(x)) * w for cla, w in zip(self.cla, self.head_weight))
        return torch.logit(p.clamp(1e-7, 1 - 1e-7)).transpose(1, 2)


class TimmCNN(nn.Module):
    prefers_channels_last = True  # cuDNN's depthwise and 1x1 convolutions run faster in NHWC

    def __init__(self, num_classes: int, num_frames: int, num_mel_bins: int = 128, timm_name: str = "efficientnet_b2",
                 pooling: str = "mean", drop_rate: float = 0.0):
        super().__init__()
        import timm  # here, not at the top: importing it takes seconds that params validation need not pay

        self.timm_name = timm_name
        self.backbone = timm.create_model(timm_name, pretrained=False, in_chans=1, num_classes=0, global_pool="",
                                          drop_rate=drop_rate)
        channels = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
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
        fmap = self.backbone.forward_features(x.transpose(1, 2).unsqueeze(1))  # [B, T, F] -> [B, 1, F, T]
        if self.pooling == "mean":
            return self.head(self.pooled(fmap))
        return self.head(self.positions(fmap).mean(dim=2))  # frequency averaged, heads over time

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, T', classes]: class logits at every time step of the last feature map (decision-level
        pooling, as PANNs: frequency pooled, time kept). With `pooling: mean` on an EfficientNet their mean over
        time is the clip's logits; the attention heads give their per-step class values."""
        fmap = self.backbone.forward_features(x.transpose(1, 2).unsqueeze(1))
        if self.pooling == "mean":
            return self.head(self.time_pooled(fmap).transpose(1, 2))
        return self.head.frame_logits(self.positions(fmap).mean(dim=2))

    def time_pooled(self, fmap: torch.Tensor) -> torch.Tensor:
        """[B, C, F', T'] -> [B, features, T']: `pooled` over frequency only."""
        return fmap.mean(dim=2)

    def pooled(self, fmap: torch.Tensor) -> torch.Tensor:
        """[B, C, F', T'] -> [B, features]: what timm's network does between its features and its classifier."""
        return fmap.mean(dim=(2, 3))

    def positions(self, fmap: torch.Tensor) -> torch.Tensor:
        """[B, C, F', T'] -> [B, features, F', T']: the features at every position, for the attention heads."""
        return fmap

    def to_timm(self) -> nn.Module:
        """The same network as timm's own model: timm's CNN with one input channel, average pooling and a linear
        classifier is exactly this one with `pooling: mean`; it takes the normalised fbank as an image [batch, 1,
        mel bins, frames] and gives the same logits."""
        import timm

        if self.pooling != "mean":
            raise PretrainedError(f"pooling {self.pooling!r} is not a timm model (timm's CNNs pool by the mean); "
                                  "export this model as ONNX or TorchScript instead")
        model = timm.create_model(self.timm_name, pretrained=False, in_chans=1, num_classes=self.head.out_features)
        model.load_state_dict(timm_state(self.state_dict()))
        return model.eval()


def timm_state(sd: dict) -> dict:
    """A TimmCNN's weights (mean pooling) in timm's own keys: `backbone.` dropped, the head as timm's classifier."""
    weights = {k.removeprefix("backbone."): v for k, v in sd.items() if k.startswith("backbone.")}
    weights.update({"classifier.weight": sd["head.weight"], "classifier.bias": sd["head.bias"]})
    return weights


def from_timm_state(sd: dict) -> dict:
    """timm's keys (a timm folder this project exported, or an ImageNet checkpoint) in a TimmCNN's: the classifier
    as the head, everything else under `backbone.`."""
    out = {}
    for key, value in sd.items():
        if key.startswith("classifier."):
            out["head." + key.removeprefix("classifier.")] = value
        else:
            out["backbone." + key] = value
    return out


def one_channel_stem(sd: dict, key: str) -> dict:
    """An ImageNet stem's RGB kernels summed into one input channel (see the module docstring)."""
    stem = sd.get(key)
    if stem is not None and stem.dim() == 4 and stem.shape[1] == 3:
        sd = {**sd, key: stem.sum(dim=1, keepdim=True)}
    return sd


class TimmCNNFamily(Family):
    """A family of timm CNNs: `timm_names` maps each registered model to timm's name for it."""
    kind = "cnn"
    config = TimmCNNConfig
    folder_format, folder_library = "timm", "timm"
    converts = "a timm folder cmkd exported"
    bench_batch = {"tiny": 8, "cpu": 16, "gpu": 96}  # a CNN's step is ~3x an AST's: a GPU wants larger batches
    network = TimmCNN
    timm_names: dict[str, str] = {}

    def __init__(self):
        super().__init__()
        for name, timm_name in self.timm_names.items():
            self.models[name] = self._factory(timm_name)

    def _factory(self, timm_name: str):
        def build(**kwargs) -> nn.Module:
            return self.network(timm_name=timm_name, **kwargs)
        return build

    def pretrained_state(self, model, sd, meta, path):
        """A checkpoint this project trained as is; a timm folder this project exported, or a timm ImageNet
        checkpoint, in timm's keys: the stem's RGB kernels summed into one channel, an ImageNet classifier left
        out (its 1000 classes are not these)."""
        if "checkpoint" in meta or any(k.startswith("backbone.") for k in sd):
            return dict(sd)
        if "conv_stem.weight" not in sd:
            raise PretrainedError(f"{path}: not a timm {self.name} checkpoint: no conv_stem.weight")
        if "cmkd" not in (meta.get("hf_config") or {}):  # ImageNet: its classifier predicts ImageNet's classes
            sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
        return from_timm_state(one_channel_stem(sd, "conv_stem.weight"))

    def describe_checkpoint(self, sd, meta, path, frames):
        """A timm folder this project exported (`cmkd export --format folder`): timm's config.json with the
        network's timm name and cmkd's record of its inputs."""
        config = meta.get("hf_config") or {}
        timm_name = config.get("architecture")
        if "cmkd" not in config or timm_name not in self.timm_names.values():
            return None
        name = next(n for n, t in self.timm_names.items() if t == timm_name)
        record = config["cmkd"]
        return {"format": "timm", "name": name, "architecture": self.name, "model": {"pooling": "mean"},
                "num_frames": frames or record["num_frames"], "num_mel_bins": record["features"]["num_mel_bins"],
                "num_classes": config["num_classes"],
                "classes": config.get("label_names"), "normalization": record["normalization"],
                "multi_label": record["task"] == "multi-label"}

    def write_folder(self, model, meta, out: Path):
        """The folder timm itself writes for its hub models (timm's save_for_hf: config.json with architecture,
        num_classes, in_chans 1, label names, and cmkd's record of the inputs; model.safetensors), read back by
        `timm.create_model("local-dir:DIR", pretrained=True)`."""
        import timm
        from timm.models import save_for_hf

        native = model.to_timm()
        save_for_hf(native, str(out), model_config={
            "label_names": meta.classes,
            "cmkd": {"input": "the normalised Kaldi fbank as an image [batch, 1, mel bins, frames]: (x - mean) / "
                              "(2 std)", "normalization": meta.normalization, "features": meta.fbank,
                     "num_frames": meta.num_frames, "task": meta.task}}, model_args={"in_chans": 1},
                    safe_serialization=True)
        loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()  # timm's own loader

        def run(batch):
            with torch.no_grad():
                return loaded(batch.transpose(1, 2).unsqueeze(1)).numpy()
        return run, ('timm.create_model("local-dir:DIR", pretrained=True) on the normalised fbank '
                     '[batch, 1, mel bins, frames]')
