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

from .. import Family, ModelConfig, PretrainedError, register_family


class ASTConfig(ModelConfig):
    fstride: int = Field(10, ge=1, le=16)  # patch strides over frequency and time (10 and 10 in the paper)
    tstride: int = Field(10, ge=1, le=16)
    layer_norm_eps: float | None = Field(None, gt=0)  # None: the AST code's (DeiT 1e-6, head 1e-5); HF AST: 1e-12


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
                 depth: int = 12, num_heads: int = 12, fstride: int = 10, tstride: int = 10, patch_size: int = 16,
                 layer_norm_eps: float | None = None):
        super().__init__()
        if num_frames < patch_size or num_mel_bins < patch_size:
            raise ValueError(f"AST needs at least {patch_size} frames and mel bins, got {num_frames}x{num_mel_bins}")
        from timm.models.deit import VisionTransformerDistilled

        self.v = VisionTransformerDistilled(
            img_size=(num_mel_bins, num_frames), patch_size=patch_size, in_chans=1, num_classes=0,
            embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            embed_layer=partial(overlapping_patch_embed(), stride=(fstride, tstride)),
            norm_layer=partial(nn.LayerNorm, eps=layer_norm_eps or 1e-6),
        )
        self.head = nn.Sequential(nn.LayerNorm(embed_dim, eps=layer_norm_eps or 1e-5),
                                  nn.Linear(embed_dim, num_classes))

    @property
    def grid_size(self) -> tuple[int, int]:
        """(frequency, time) patches."""
        return self.v.patch_embed.grid_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).unsqueeze(1)  # [B, T, F] -> [B, 1, F, T]: frequency is the image height
        tokens = self.v.forward_features(x)
        return self.head((tokens[:, 0] + tokens[:, 1]) / 2)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, time patches, classes]: the head on every patch token, averaged over frequency (the
        patch tokens mapped back to time; the head learnt on the cls and distillation tokens only)."""
        tokens = self.v.forward_features(x.transpose(1, 2).unsqueeze(1))[:, 2:]
        f, t = self.grid_size
        return self.head(tokens).reshape(len(x), f, t, -1).mean(dim=1)


def pretrained_state(model: AST, sd: dict[str, torch.Tensor], meta: dict, path: Path) -> dict[str, torch.Tensor]:
    """A weights file's state dict in this model's keys and shapes (pipeline/models/pretrained.py loads it).

    Formats, told apart by their keys (checkpoint_format):
    - cmkd: an AST this project trained (or `cmkd convert` wrote).
    - ast: the AST repository's checkpoints (audioset_10_10_0.4593.pth, its ESC-50 and Speech Commands
      fine-tunes): DataParallel keys `module.v.*` (timm DeiT) and `module.mlp_head.{0,1}`; the DeiT's own
      `head`/`head_dist` are unused. Its (frequency, time) grid is read from the position embeddings.
    - hf: Hugging Face `ASTForAudioClassification` (the Hub's layout, `encoder.layer.N.attention.attention.
      {query,key,value}`, or transformers 5's `layers.N.attention.{q,k,v}_proj`); its grid from config.json.
    - timm: an ImageNet DeiT: the patch kernels summed over the RGB channels, the square grid (24x24 for the
      384-pixel DeiT that AST starts from).
    The position-embedding grid is then adapted to this model's (AST's rule: crop or interpolate each axis).
    """
    kind = checkpoint_format(sd)
    if kind == "hf":
        sd, old_grid = hf_to_cmkd(sd, meta, path)
    elif kind == "ast":
        sd = {k.removeprefix("module.").replace("mlp_head.", "head.", 1): v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if not k.startswith(("v.head.", "v.head_dist."))}
        old_grid = grid_from_positions(sd["v.pos_embed"].shape[1] - 2, model.v.patch_embed.img_size[0],
                                       model.v.patch_embed.stride[0], path)
    elif kind == "cmkd":  # an AST this project trained
        sd, ckpt = dict(sd), meta["checkpoint"]
        fstride, tstride = ckpt.network.get("fstride", 10), ckpt.network.get("tstride", 10)
        old_grid = ((ckpt.num_mel_bins - 16) // fstride + 1, (ckpt.num_frames - 16) // tstride + 1)
    else:  # a timm DeiT (ImageNet): no `v.` prefix, RGB patch kernels, square grid
        if "dist_token" not in sd:
            raise PretrainedError(f"{path}: not a DeiT (distilled) checkpoint: no dist_token; AST needs cls "
                                  f"and distillation tokens")
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


def checkpoint_format(sd: dict) -> str:
    """Which layout an AST weights file has: cmkd, ast (the AST repository), hf (Hugging Face) or timm (DeiT)."""
    if any(k.startswith("audio_spectrogram_transformer.") for k in sd):
        return "hf"
    if "module.v.pos_embed" in sd or ("v.pos_embed" in sd and "mlp_head.0.weight" in sd):
        return "ast"
    if "v.pos_embed" in sd:
        return "cmkd"
    return "timm"


def grid_from_positions(patches: int, mel_bins: int, fstride: int, path: Path) -> tuple[int, int]:
    """The (frequency, time) patch grid of an AST checkpoint from its number of patch positions: the frequency
    axis from this model's fstride if it divides the count, else from the first stride (10, 12, ..., 16) that does."""
    for stride in dict.fromkeys([fstride, 10, 12, 14, 16, *range(1, 17)]):
        rows = (mel_bins - 16) // stride + 1
        if patches % rows == 0:
            return rows, patches // rows
    raise PretrainedError(f"{path}: {patches} patch positions fit no frequency stride over {mel_bins} mel bins")


HF_BLOCK = {  # Hugging Face AST layer -> timm Block, for both of transformers' layouts
    "layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}
HF_QKV = (("attention.attention.query", "attention.attention.key", "attention.attention.value"),
          ("attention.q_proj", "attention.k_proj", "attention.v_proj"))


def hf_to_cmkd(sd: dict, meta: dict, path: Path) -> tuple[dict, tuple[int, int]]:
    """A Hugging Face ASTForAudioClassification state dict in cmkd's keys (query, key and value concatenated into
    timm's qkv), and its patch grid from config.json (frequency_stride, time_stride, max_length, num_mel_bins)."""
    config = meta.get("hf_config")
    if config is None:
        raise PretrainedError(f"{path}: a Hugging Face AST needs its config.json beside the weights")
    prefix = "audio_spectrogram_transformer."
    out = {"v.cls_token": sd[prefix + "embeddings.cls_token"],
           "v.dist_token": sd[prefix + "embeddings.distillation_token"],
           "v.pos_embed": sd[prefix + "embeddings.position_embeddings"],
           "v.patch_embed.proj.weight": sd[prefix + "embeddings.patch_embeddings.projection.weight"],
           "v.patch_embed.proj.bias": sd[prefix + "embeddings.patch_embeddings.projection.bias"],
           "v.norm.weight": sd[prefix + "layernorm.weight"], "v.norm.bias": sd[prefix + "layernorm.bias"],
           "head.0.weight": sd["classifier.layernorm.weight"], "head.0.bias": sd["classifier.layernorm.bias"],
           "head.1.weight": sd["classifier.dense.weight"], "head.1.bias": sd["classifier.dense.bias"]}
    layers = prefix + ("encoder.layer." if any(k.startswith(prefix + "encoder.layer.") for k in sd) else "layers.")
    for i in range(config["num_hidden_layers"]):
        at = f"{layers}{i}."
        qkv = next(names for names in HF_QKV if f"{at}{names[0]}.weight" in sd)
        for kind in ("weight", "bias"):
            out[f"v.blocks.{i}.attn.qkv.{kind}"] = torch.cat([sd[f"{at}{name}.{kind}"] for name in qkv])
            for theirs, ours in HF_BLOCK.items():
                if f"{at}{theirs}.{kind}" in sd:
                    out[f"v.blocks.{i}.{ours}.{kind}"] = sd[f"{at}{theirs}.{kind}"]
    grid = ((config["num_mel_bins"] - 16) // config["frequency_stride"] + 1,
            (config["max_length"] - 16) // config["time_stride"] + 1)
    return out, grid


def to_hugging_face(sd: dict, meta) -> tuple[dict, dict]:
    """This family's weights as Hugging Face's ASTForAudioClassification holds them (the Hub's key layout, timm's
    fused qkv split into query, key and value) and its config.json (ASTConfig's keys), for `cmkd export --format
    huggingface`; `hf_to_cmkd` reads it back. `meta` is the checkpoint's description (pipeline/models/checkpoint.py).

    Hugging Face's AST has one LayerNorm eps; the one of the encoder's norms is written (1e-6 for a model trained
    here, whose classifier LayerNorm has 1e-5: the difference is far below what changes a probability)."""
    dims = next((d for name, d in SIZES.items() if f"ast_{name}" == meta.network["name"]), None)
    if dims is None:
        raise PretrainedError(f"{meta.network['name']}: not a registered AST size")
    prefix = "audio_spectrogram_transformer."
    out = {prefix + "embeddings.cls_token": sd["v.cls_token"],
           prefix + "embeddings.distillation_token": sd["v.dist_token"],
           prefix + "embeddings.position_embeddings": sd["v.pos_embed"],
           prefix + "embeddings.patch_embeddings.projection.weight": sd["v.patch_embed.proj.weight"],
           prefix + "embeddings.patch_embeddings.projection.bias": sd["v.patch_embed.proj.bias"],
           prefix + "layernorm.weight": sd["v.norm.weight"], prefix + "layernorm.bias": sd["v.norm.bias"],
           "classifier.layernorm.weight": sd["head.0.weight"], "classifier.layernorm.bias": sd["head.0.bias"],
           "classifier.dense.weight": sd["head.1.weight"], "classifier.dense.bias": sd["head.1.bias"]}
    theirs_of = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
                 "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    for i in range(dims["depth"]):
        at = f"{prefix}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            for name, part in zip(HF_QKV[0], sd[f"v.blocks.{i}.attn.qkv.{kind}"].chunk(3)):
                out[f"{at}{name}.{kind}"] = part.contiguous()
            for ours, theirs in theirs_of.items():
                out[f"{at}{theirs}.{kind}"] = sd[f"v.blocks.{i}.{ours}.{kind}"]
    eps = meta.network.get("layer_norm_eps") or 1e-6
    width = dims["embed_dim"]
    config = {
        "architectures": ["ASTForAudioClassification"], "model_type": "audio-spectrogram-transformer",
        "hidden_size": width, "num_hidden_layers": dims["depth"], "num_attention_heads": dims["num_heads"],
        "intermediate_size": 4 * width, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02, "layer_norm_eps": eps, "patch_size": 16,
        "qkv_bias": True, "frequency_stride": meta.network.get("fstride", 10),
        "time_stride": meta.network.get("tstride", 10), "max_length": meta.num_frames,
        "num_mel_bins": meta.num_mel_bins, "id2label": {str(i): c for i, c in enumerate(meta.classes)},
        "label2id": {c: i for i, c in enumerate(meta.classes)},
        "problem_type": "multi_label_classification" if meta.task_kind.multi_label else
        "single_label_classification", "torch_dtype": "float32",
        "cmkd": {"network": meta.network, "task": meta.task}}  # what `cmkd convert` rebuilds exactly
    return out, config


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


def describe(sd: dict, meta: dict, path: Path, frames: int | None = None) -> dict | None:
    """What `cmkd convert` needs to rebuild an AST from a weights file (pipeline/models/convert.py): the registered
    size, its config, frames, mel bins, class count and, where the file says, class names and normalisation.
    None if the file is not an AST checkpoint of the AST repository or Hugging Face."""
    kind = checkpoint_format(sd)
    if kind not in ("ast", "hf"):
        return None
    if kind == "hf":
        config = meta.get("hf_config") or {}
        if not config:
            raise PretrainedError(f"{path}: a Hugging Face AST needs its config.json beside the weights")
        width, depth = config["hidden_size"], config["num_hidden_layers"]
        fstride, tstride, mel_bins = config["frequency_stride"], config["time_stride"], config["num_mel_bins"]
        num_frames, eps = frames or config["max_length"], config.get("layer_norm_eps", 1e-12)
        if "cmkd" in config:  # exported by cmkd: its own norms (the classifier's eps differs from the encoder's)
            eps = config["cmkd"]["network"].get("layer_norm_eps")
        num_classes = sd["classifier.dense.weight"].shape[0]
        id2label = config.get("id2label") or {}
        classes = [id2label.get(str(i), id2label.get(i)) for i in range(num_classes)] if id2label else None
        pre = meta.get("hf_preprocessor") or {}
        normalization = {"mean": pre["mean"], "std": pre["std"]} if "mean" in pre and "std" in pre else None
        multi_label = {"multi_label_classification": True, "single_label_classification": False}.get(
            config.get("problem_type"))
    else:
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        pos = sd["v.pos_embed"]
        width, mel_bins = pos.shape[-1], 128
        depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("v.blocks."))
        fstride = tstride = 10
        rows, cols = grid_from_positions(pos.shape[1] - 2, mel_bins, fstride, path)
        fstride = next(s for s in dict.fromkeys([10, 12, 14, 16, *range(1, 17)]) if (mel_bins - 16) // s + 1 == rows)
        tstride = fstride  # the AST repository's checkpoints use equal strides
        # the frame count is not in the file: the multiple of 16 among those giving `cols` patches (1024 for 101)
        lowest = (cols - 1) * tstride + 16
        num_frames = frames or next((f for f in range(lowest, lowest + tstride) if f % 16 == 0), lowest)
        eps, num_classes, classes, normalization = None, sd["mlp_head.1.weight"].shape[0], None, None
        multi_label = None
    size = next((name for name, dims in SIZES.items() if dims["embed_dim"] == width and dims["depth"] == depth), None)
    if size is None:
        raise PretrainedError(f"{path}: an AST of width {width} and depth {depth}; registered sizes: "
                              + ", ".join(f"ast_{n} ({d['embed_dim']}x{d['depth']})" for n, d in SIZES.items()))
    return {"format": kind, "name": f"ast_{size}", "architecture": "ast",
            "model": {"fstride": fstride, "tstride": tstride, "layer_norm_eps": eps},
            "num_frames": num_frames, "num_mel_bins": mel_bins, "num_classes": num_classes, "classes": classes,
            "normalization": normalization, "multi_label": multi_label}


def write_hugging_face(model: AST, meta, out: Path):
    """The folder `transformers` loads offline: config.json (ASTConfig: sizes, strides, max_length, num_mel_bins,
    id2label / label2id, layer_norm_eps), model.safetensors (the Hub's key layout) and preprocessor_config.json
    (ASTFeatureExtractor with the model's own mean, std and max_length), so that `transformers.pipeline(
    "audio-classification", model=DIR)` takes audio and `cmkd convert DIR` reads it back. Read back here as cmkd
    reads a Hugging Face folder (the same weights, keys mapped both ways)."""
    import json

    from safetensors.torch import load_file, save_file

    if meta.network["name"] not in {f"ast_{size}" for size in SIZES}:
        raise PretrainedError(f"{meta.network['name']}: not a registered AST size")
    weights, config = to_hugging_face(model.state_dict(), meta)
    save_file({k: v.contiguous() for k, v in weights.items()}, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    norm, f = meta.input_normalization, meta.fbank
    (out / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "ASTFeatureExtractor", "feature_size": 1, "sampling_rate": int(f["sample_rate"]),
        "num_mel_bins": meta.num_mel_bins, "max_length": meta.num_frames, "mean": norm.mean, "std": norm.std,
        "do_normalize": True, "padding_value": 0.0, "return_attention_mask": False}, indent=2) + "\n")

    back, grid = hf_to_cmkd(load_file(out / "model.safetensors"), {"hf_config": config}, out)
    again = AST(num_classes=meta.num_classes, num_frames=meta.num_frames, num_mel_bins=meta.num_mel_bins,
                **SIZES[meta.network["name"].removeprefix("ast_")], fstride=meta.network.get("fstride", 10),
                tstride=meta.network.get("tstride", 10), layer_norm_eps=meta.network.get("layer_norm_eps")).eval()
    again.load_state_dict(back)
    if grid != again.grid_size:
        raise RuntimeError(f"{out}: the config's patch grid {grid} is not the model's {again.grid_size}")

    def run(batch):
        with torch.no_grad():
            return again(batch).numpy()
    return run, ('transformers.pipeline("audio-classification", model=DIR) or '
                 'transformers.ASTForAudioClassification.from_pretrained(DIR)')


class ASTFamily(Family):
    name, kind = "ast", "transformer"
    config = ASTConfig
    folder_format, folder_library = "huggingface", "transformers"
    folder_card = ("The feature extractor (preprocessor_config.json) computes exactly these features from audio.",)
    converts = "the AST repository's .pth, a Hugging Face ASTForAudioClassification folder"
    card_tags = ("audio-spectrogram-transformer",)
    bench_models = {"tiny": "ast_test", "cpu": "ast_test", "gpu": "ast_base"}
    export_models = {"tiny": "ast_test", "cpu": "ast_tiny", "gpu": "ast_tiny"}

    def __init__(self):
        super().__init__()
        self.models = {f"ast_{size}": partial(AST, **dims) for size, dims in SIZES.items()}

    pretrained_state = staticmethod(pretrained_state)

    def describe_checkpoint(self, sd, meta, path, frames):
        return describe(sd, meta, path, frames)

    def write_folder(self, model, meta, out):
        return write_hugging_face(model, meta, out)


register_family(ASTFamily())
