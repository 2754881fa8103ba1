"""One entry point, `create_model(name, ...)`, over a registry of named configurations (as in timm).

Every model takes log-mel features [batch, frames, mel_bins] and returns logits [batch, classes].
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = factory


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, num_frames: int, num_mel_bins: int = 128, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes, num_frames=num_frames, num_mel_bins=num_mel_bins, **kwargs)


from . import ast, efficientnet  # noqa: E402,F401  (fills the registry)
