"""EfficientNet (timm) for spectrograms: the CMKD CNN (`pooling: mean`) and PSLA's (`pooling: attention` / `psla`).

The network is pipeline/models/timm_cnn.py's (one input channel, a pooling head); this file names the sizes and
reads the EfficientNet checkpoints people have: timm's ImageNet ones, PSLA's (efficientnet_pytorch's layout under
`module.effnet.`, with its attention head), and the timm folders `cmkd export` writes.
"""
from __future__ import annotations

from pathlib import Path

from .. import PretrainedError, register_family
from ..timm_cnn import TimmCNNFamily


class EfficientNet(TimmCNNFamily):
    name = "efficientnet"
    card_tags = ("efficientnet",)
    bench_models = {"tiny": "efficientnet_test", "cpu": "efficientnet_test", "gpu": "efficientnet_b2"}
    export_models = {"tiny": "efficientnet_test", "cpu": "efficientnet_b0", "gpu": "efficientnet_b0"}
    timm_names = {"efficientnet_test": "test_efficientnet",
                  **{f"efficientnet_b{b}": f"efficientnet_b{b}" for b in range(8)},
                  # TensorFlow "same" padding and BatchNorm eps 1e-3: what PSLA's efficientnet_pytorch checkpoints
                  # load into
                  **{f"tf_efficientnet_b{b}": f"tf_efficientnet_b{b}" for b in range(8)}}

    def pretrained_state(self, model, sd, meta, path):
        """Besides a timm checkpoint or folder (TimmCNNFamily): PSLA's, block by block onto timm's names."""
        if is_psla(sd):
            return psla_to_cmkd(sd, [len(stage) for stage in model.backbone.blocks], path)
        return super().pretrained_state(model, sd, meta, path)

    def describe_checkpoint(self, sd, meta, path, frames):
        return describe_psla(sd, path, frames) or super().describe_checkpoint(sd, meta, path, frames)


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
