"""One entry point, `create_model(name, ...)`, over a registry of named configurations (as in timm).

Every model takes log-mel features [batch, frames, mel_bins] and returns logits [batch, classes]. A model family
lives in one file of this package: its network, its settings class (a ModelConfig: the keys `models.<key>` may
hold in params.yaml) and the adapters for the checkpoints people have of it. Every module here is imported below,
so a new family registers itself by being a file in this folder.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, ClassVar

import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError


class ModelConfig(BaseModel):
    """Keys every model config has: `name` (a registered model), training keys (lr, epochs, pretrained); a family's
    subclass adds the keys its network is built with."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, protected_namespaces=())
    name: str
    lr: float = Field(1.0e-3, gt=0)
    epochs: int = Field(10, ge=1)
    pretrained: str | None = None  # a local weights file (pipeline/models/pretrained.py)

    TRAINING_KEYS: ClassVar[frozenset] = frozenset({"name", "lr", "epochs", "pretrained"})

    def build_kwargs(self) -> dict:
        """What the network is built with: everything but the training keys."""
        return {k: v for k, v in self.model_dump().items() if k not in self.TRAINING_KEYS}


class PretrainedError(InputError, ValueError):
    """A weights file that does not fit the model it is loaded into (pipeline/models/pretrained.py)."""


_REGISTRY: dict[str, tuple[Callable[..., nn.Module], type[ModelConfig]]] = {}


def register_model(name: str, factory: Callable[..., nn.Module], config: type[ModelConfig] = ModelConfig) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = (factory, config)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def config_class(name: str) -> type[ModelConfig]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name][1]


def create_model(name: str, num_classes: int, num_frames: int, num_mel_bins: int = 128, **kwargs) -> nn.Module:
    config_class(name)  # the error names the registered models
    return _REGISTRY[name][0](num_classes=num_classes, num_frames=num_frames, num_mel_bins=num_mel_bins, **kwargs)


def build_model(cfg: ModelConfig | dict, num_classes: int, num_frames: int, num_mel_bins: int) -> nn.Module:
    """The network a model config describes (a dict is validated against its family's settings first)."""
    if isinstance(cfg, dict):
        cfg = config_class(cfg["name"]).model_validate(cfg)
    return create_model(cfg.name, num_classes=num_classes, num_frames=num_frames, num_mel_bins=num_mel_bins,
                        **cfg.build_kwargs())


for _module in pkgutil.iter_modules(__path__):  # fills the registry: every family is a module of this package
    importlib.import_module(f"{__name__}.{_module.name}")
