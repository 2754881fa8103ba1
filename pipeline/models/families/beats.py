"""BEATs (Chen et al. 2023, "BEATs: Audio Pre-Training with Acoustic Tokenizers", github.com/microsoft/unilm/tree/
master/beats): the self-supervised audio transformer (AudioSet mAP 0.480 fine-tuned), here a CMKD teacher or student.

The network: BEATs' fbank frames [batch, frames, 128] cut into 16 x 16 patches by a convolution (no bias), the patch
tokens in time-major order, layer-normalised and projected to the encoder's width; a convolutional position
embedding (a grouped Conv1d over the tokens with weight normalisation, its last output dropped when the kernel is
even, GELU) added, then a layer norm; then post-LN transformer layers with DeepNet's residual scaling (the residual
x (2 x layers)^(1/4)) whose attention adds a bucketed relative-position bias (T5's buckets: half per direction,
exact up to a quarter, log-spaced to `max_distance`; one table for all layers), gated per query and head (BEATs'
gated relative position: two sigmoid gates from the query's projection). A linear classifier scores every token and
the scores are averaged over tokens (BEATs' fine-tuned predictor; its released fine-tunes return the sigmoid of that).

Parameter names follow BEATs' own (its classifier `predictor` is `head` here, and its one relative-position table,
saved under every layer, lives once in the encoder), so its released files load: the fine-tuned
`BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt*.pt` (`{'cfg', 'model'}`) through `cmkd convert`, the pre-trained
`BEATs_iter3*.pt` as `models.<key>.pretrained`, which trains a new head. Its front-end is BEATs' own fbank
(pipeline/features/beats.py): a store of its own.

Written from the paper and the description above, checked against BEATs' code (tests/test_beats.py: the same
logits from the same audio); no line of that code is copied here.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from .. import Family, ModelConfig, PretrainedError, register_family

SIZES = {  # patch embedding width, encoder width, layers, heads, feed-forward width, position conv kernel, groups
    "base": dict(patch_dim=512, dim=768, depth=12, heads=12, ffn_dim=3072, conv_pos=128, conv_pos_groups=16),
    "test": dict(patch_dim=32, dim=64, depth=2, heads=4, ffn_dim=128, conv_pos=16, conv_pos_groups=4),
}
PATCH = 16
# what a BEATs cfg must say for this network to be the one it describes (released BEATs iter1-3 all do)
REQUIRED_CFG = {"input_patch_size": PATCH, "layer_norm_first": False, "relative_position_embedding": True,
                "gru_rel_pos": True, "activation_fn": "gelu", "conv_bias": False}
CFG_SHAPE = {"embed_dim": "patch_dim", "encoder_embed_dim": "dim", "encoder_layers": "depth",
             "encoder_attention_heads": "heads", "encoder_ffn_embed_dim": "ffn_dim", "conv_pos": "conv_pos",
             "conv_pos_groups": "conv_pos_groups"}
TEN_SECONDS = 998  # BEATs' fbank frames of a 10 s AudioSet clip, what its released models saw


class BEATsConfig(ModelConfig):
    dropout: float = Field(0.1, ge=0, lt=1)            # after attention, feed-forward and the position embedding
    attention_dropout: float = Field(0.1, ge=0, lt=1)
    head_dropout: float = Field(0.1, ge=0, lt=1)       # BEATs' predictor_dropout
    deep_norm: bool = True                            # DeepNet's residual scaling (every released BEATs)
    num_buckets: int = Field(320, ge=4)
    max_distance: int = Field(800, ge=2)


def relative_buckets(length: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """[length, length] bucket of key position minus query position: half the buckets for each sign, offsets below
    a quarter of them exact, larger ones log-spaced up to `max_distance`, beyond it the last bucket."""
    offset = torch.arange(length)[None, :] - torch.arange(length)[:, None]
    half = num_buckets // 2
    exact = half // 2
    sign = (offset > 0).long() * half
    distance = offset.abs()
    far = exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    far = far.clamp(max=half - 1)
    return sign + torch.where(distance < exact, distance, far)


class WeightNormConv1d(nn.Module):
    """A grouped Conv1d whose kernel is weight_v scaled to norm weight_g at each kernel position (the norm over
    output and input channels), with 'same' padding of kernel // 2."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        v = torch.randn(channels, channels // groups, kernel) * math.sqrt(4.0 / (kernel * channels))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.padding, self.groups = kernel // 2, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class PositionConv(nn.Module):
    """Tokens [B, T, C] -> their convolutional position embedding [B, T, C]."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv = WeightNormConv1d(dim, kernel, groups)
        self.drop_last = kernel % 2 == 0  # an even kernel with kernel // 2 padding makes one output too many

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.drop_last:
            y = y[:, :, :-1]
        return F.gelu(y).transpose(1, 2)


class GatedRelativeAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        # each query's gates on the position bias: sigmoid of two sums of four of grep_linear's outputs
        gate_a, gate_b = torch.sigmoid(self.grep_linear(q).view(b, self.heads, t, 2, 4).sum(-1)).chunk(2, dim=-1)
        bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * position_bias
        if torch.compiler.is_exporting():  # the exporter's SDPA with a float mask mislays its output's strides
            out = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim) + bias.to(q.dtype), -1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                                 dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, c))


class Layer(nn.Module):
    """Post-LN: x = LN(alpha x + attention(x)); x = LN(alpha x + FFN(x)), alpha DeepNet's (2 x layers)^(1/4)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float, alpha: float):
        super().__init__()
        self.self_attn = GatedRelativeAttention(dim, heads, attention_dropout)
        self.self_attn_layer_norm, self.final_layer_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.drop, self.alpha = nn.Dropout(dropout), alpha

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.alpha + self.drop(self.self_attn(x, position_bias)))
        return self.final_layer_norm(x * self.alpha + self.drop(self.fc2(F.gelu(self.fc1(x)))))


class Encoder(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, ffn_dim: int, conv_pos: int, conv_pos_groups: int,
                 dropout: float, attention_dropout: float, deep_norm: bool, num_buckets: int, max_distance: int):
        super().__init__()
        self.pos_conv = PositionConv(dim, conv_pos, conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim)
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)
        alpha = (2 * depth) ** 0.25 if deep_norm else 1.0
        self.layers = nn.ModuleList(Layer(dim, heads, ffn_dim, dropout, attention_dropout, alpha)
                                    for _ in range(depth))
        self.drop, self.num_buckets, self.max_distance = nn.Dropout(dropout), num_buckets, max_distance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.layer_norm(x + self.pos_conv(x)))
        buckets = relative_buckets(x.shape[1], self.num_buckets, self.max_distance).to(x.device)
        position_bias = self.relative_attention_bias(buckets).permute(2, 0, 1)  # [heads, T, T]
        for layer in self.layers:
            x = layer(x, position_bias)
        return x


class BEATs(nn.Module):
    def __init__(self, num_classes: int, num_frames: int, num_mel_bins: int = 128, *, patch_dim: int, dim: int,
                 depth: int, heads: int, ffn_dim: int, conv_pos: int, conv_pos_groups: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1, head_dropout: float = 0.1, deep_norm: bool = True,
                 num_buckets: int = 320, max_distance: int = 800):
        super().__init__()
        if num_frames < PATCH or num_mel_bins < PATCH:
            raise ValueError(f"BEATs needs at least {PATCH} frames and mel bins (its patches), got {num_frames} x "
                             f"{num_mel_bins}")
        self.patch_embedding = nn.Conv2d(1, patch_dim, PATCH, PATCH, bias=False)
        self.layer_norm = nn.LayerNorm(patch_dim)
        self.post_extract_proj = nn.Linear(patch_dim, dim) if patch_dim != dim else nn.Identity()
        self.encoder = Encoder(dim, depth, heads, ffn_dim, conv_pos, conv_pos_groups, dropout, attention_dropout,
                               deep_norm, num_buckets, max_distance)
        self.head_drop = nn.Dropout(head_dropout)
        self.head = nn.Linear(dim, num_classes)
        self._init(depth, deep_norm)

    def _init(self, depth: int, deep_norm: bool):
        """BERT's normal(0.02) for linear maps and the bias table; DeepNet's xavier gains under deep norm."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        if deep_norm:
            beta = (8 * depth) ** -0.25
            for layer in self.encoder.layers:
                attn = layer.self_attn
                for linear, gain in ((attn.q_proj, 1.0), (attn.k_proj, 1.0), (attn.v_proj, beta),
                                     (attn.out_proj, beta), (layer.fc1, beta), (layer.fc2, beta)):
                    nn.init.xavier_normal_(linear.weight, gain=gain)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, frames, bins] -> encoded tokens [B, (frames // 16) x (bins // 16), dim], time-major."""
        patches = self.patch_embedding(x.unsqueeze(1)).flatten(2).transpose(1, 2)
        return self.encoder(self.post_extract_proj(self.layer_norm(patches)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.tokens(x))).mean(dim=1)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, T // 16, classes]: each time patch's logits, the mean of its frequency patches' (the
        clip's logits are the mean of these over time)."""
        logits = self.head(self.tokens(x))
        return logits.reshape(len(x), x.shape[1] // PATCH, x.shape[2] // PATCH, -1).mean(dim=2)


def is_beats(sd: dict) -> bool:
    return "patch_embedding.weight" in sd and "encoder.pos_conv.0.weight_g" in sd


def from_released(sd: dict) -> dict:
    """BEATs' keys -> this network's: the predictor is the head, the position convolution's weights are one level
    down, and the relative-position table (saved under every layer, one tensor) is the encoder's."""
    out = {}
    for key, value in sd.items():
        if key.startswith("encoder.layers.") and ".self_attn.relative_attention_bias." in key:
            if key.startswith("encoder.layers.0."):
                out["encoder.relative_attention_bias.weight"] = value
            continue
        key = key.replace("encoder.pos_conv.0.", "encoder.pos_conv.conv.", 1)
        out["head." + key.removeprefix("predictor.") if key.startswith("predictor.") else key] = value
    return out


def check_cfg(cfg: dict | None, path: Path, model: BEATs | None = None) -> None:
    """A BEATs file's cfg against what this family builds (and, given one, against `model`'s settings)."""
    if not cfg:
        raise PretrainedError(f"{path}: a BEATs state dict without its cfg; load the released file, "
                              "{'cfg': ..., 'model': ...}, as it is")
    wrong = [f"{k}={cfg[k]!r} (needs {v!r})" for k, v in REQUIRED_CFG.items() if k in cfg and cfg[k] != v]
    if model is not None:
        layer = model.encoder.layers[0]
        wanted = {"deep_norm": layer.alpha != 1.0, "num_buckets": model.encoder.num_buckets,
                  "max_distance": model.encoder.max_distance}
        wrong += [f"{k}={cfg[k]!r} (this model's models.<key>.{k} is {v!r})" for k, v in wanted.items()
                  if k in cfg and cfg[k] != v]
    if wrong:
        raise PretrainedError(f"{path}: a BEATs this family does not build: {', '.join(wrong)}")


class BEATsFamily(Family):
    name, kind = "beats", "transformer"
    config = BEATsConfig
    frontend = "beats"
    converts = "BEATs' fine-tuned .pt ({'cfg', 'model'}: BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt*.pt)"
    card_tags = ("beats",)
    bench_models = {"tiny": "beats_test", "cpu": "beats_test", "gpu": "beats_base"}
    export_models = {"tiny": "beats_test", "cpu": "beats_test", "gpu": "beats_base"}

    def __init__(self):
        super().__init__()
        self.models = {f"beats_{size}": partial(BEATs, **dims) for size, dims in SIZES.items()}

    def pretrained_state(self, model, sd, meta, path):
        if "checkpoint" in meta:
            return dict(sd)
        if not is_beats(sd):
            raise PretrainedError(f"{path}: not a BEATs checkpoint (no patch_embedding / encoder.pos_conv.0)")
        check_cfg(meta.get("config"), path, model)
        return from_released(sd)

    def describe_checkpoint(self, sd, meta, path: Path, frames):
        if "checkpoint" in meta or not is_beats(sd):
            return None
        cfg = meta.get("config")
        check_cfg(cfg, path)
        if "predictor.weight" not in sd:
            raise PretrainedError(f"{path}: a pre-trained BEATs, without a classifier; name it as "
                                  "models.<key>.pretrained in params.yaml to train a head on your classes")
        shape = {ours: cfg[theirs] for theirs, ours in CFG_SHAPE.items() if theirs in cfg}
        size = next((s for s, dims in SIZES.items() if all(dims[k] == v for k, v in shape.items())), None)
        if size is None:
            raise PretrainedError(f"{path}: a BEATs of {shape}; registered sizes: "
                                  + "; ".join(f"beats_{s} {d}" for s, d in SIZES.items()))
        settings = {k: cfg[k] for k in ("deep_norm", "num_buckets", "max_distance") if k in cfg}
        return {"format": "beats", "name": f"beats_{size}", "architecture": self.name, "model": settings,
                "num_frames": frames or TEN_SECONDS,
                "num_classes": sd["predictor.weight"].shape[0], "classes": None}


register_family(BEATsFamily())
