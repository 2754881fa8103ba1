"""MobileNetV3 (timm) for spectrograms: the small, fast CNN EfficientAT distils AudioSet into (its mn10 is the large
model at width 1.0), here a CMKD student or teacher like the EfficientNet.

timm's MobileNetV3 ends differently from its EfficientNet: its last 1x1 convolution (`conv_head`, to 1280 or 1024
channels) comes after the global average pool. With `pooling: mean` the network is exactly timm's (pool, head
convolution, activation, classifier), so it leaves as a timm folder; with the attention heads, the head convolution
is applied at every position, and the heads pool its output over time. A timm ImageNet checkpoint of the same name
(`.pth` / `.safetensors`) loads as models.<key>.pretrained, its stem summed into one channel (timm_cnn.py).
"""
from __future__ import annotations

import torch

from .. import register_family
from ..timm_cnn import TimmCNN, TimmCNNFamily


class MobileNetV3Audio(TimmCNN):
    def _head(self, fmap: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        return b.act2(b.norm_head(b.conv_head(fmap)))

    def pooled(self, fmap):
        return self._head(fmap.mean(dim=(2, 3), keepdim=True)).flatten(1)  # timm's order: pool, then the head conv

    def time_pooled(self, fmap):
        return self._head(fmap.mean(dim=2, keepdim=True)).squeeze(2)

    def positions(self, fmap):
        return self._head(fmap)


class MobileNetV3(TimmCNNFamily):
    name = "mobilenetv3"
    card_tags = ("mobilenetv3",)
    network = MobileNetV3Audio
    timm_names = {name: name for name in (
        "mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100", "mobilenetv3_large_075",
        "mobilenetv3_large_100", "tf_mobilenetv3_small_100", "tf_mobilenetv3_large_100")}
    bench_models = {"tiny": "mobilenetv3_small_050", "cpu": "mobilenetv3_small_050", "gpu": "mobilenetv3_large_100"}
    export_models = {"tiny": "mobilenetv3_small_050", "cpu": "mobilenetv3_large_100", "gpu": "mobilenetv3_large_100"}


register_family(MobileNetV3())
