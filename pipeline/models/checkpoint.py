"""Model checkpoints: the weights plus one typed description (`Checkpoint`) of what the model is and was trained on.

Written and read here alone. On disk a checkpoint is a dict of plain tensors, numbers, strings, lists and dicts, so
it loads with `torch.load(weights_only=True)` (never unpickling code):

    {"schema_version": 2, "weights": state dict, "ensemble": [state dicts] or None, "meta": Checkpoint fields}

Version 1 (cmkd before the schema: the weights under "model" and every other key beside them) is read and
upgraded; a version-1 file that lacks what a model needs to be fed correctly (its input normalisation, its class
list) is refused with the reason. A newer version than this code knows is refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError
from ..normalization import Normalization
from ..provenance import code_version, file_sha256
from ..stores.schema import StoreMismatchError
from ..task import Task, task_named
from . import build_model
from .ensemble import Ensemble

SCHEMA_VERSION = 2
RECIPE_FEATURES = {"sample_rate": 16000, "frame_shift_ms": 10.0, "frame_length_ms": 25.0}  # the AST/PSLA recipe


class CheckpointError(InputError, ValueError):
    """A file that is not a cmkd checkpoint this code can read; the message says why."""


class Checkpoint(BaseModel):
    """Everything but the weights. `network` is the model config the model is rebuilt from (a `models.<key>`
    entry of params.yaml, validated by its family's settings class)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str                                # what trained it: labels, student, teacher part, pretrained, bench
    architecture: str                        # the models key (cnn, ast) or, for a converted file, its family
    network: dict[str, Any]
    num_classes: int
    num_frames: int
    num_mel_bins: int
    classes: list[str]
    task: str = "single-label"               # pipeline/task: single-label or multi-label
    normalization: dict[str, float]          # the input statistics it was trained with (pipeline/normalization.py)
    features: dict[str, Any] = Field(default_factory=dict)  # the fbank parameters of its inputs
    run: str | None = None                   # the split and seed it was trained in (None: made elsewhere)
    seed: int | None = None
    direction: str | None = None             # a student's direction (forward, reverse)
    features_fingerprint: str | None = None  # the feature store it was trained on
    dataset: dict = Field(default_factory=dict)  # params data.source and its file or folder; clips per split
    teacher: dict | None = None              # what a student learned from (cache, views, online; sha256s)
    distill: dict | None = None              # lambda, tau, ... of a student
    train: dict | None = None                # the recipe (params `train`, `augment`)
    world_size: int = 1                      # processes that trained it (torchrun): part of its global batch
    history: list[dict] = Field(default_factory=list)      # one entry per epoch (losses, lr, validation score)
    selection: dict = Field(default_factory=dict)          # which weights were kept (last, best, averaged, ...)
    weight_average: dict | None = None
    cross_fit: dict | None = None            # a part teacher: k, part, seed, the clips it held out
    adopted: dict | None = None              # a ready model used as is: the file and its sha256
    source: dict | None = None               # `cmkd convert`: the file it came from
    note: str | None = None
    shaped_by: str | None = None             # the fingerprint of all that shaped its training (training/loop.py)
    code: dict = Field(default_factory=dict)  # the code version that wrote it (pipeline/provenance.py)

    @property
    def input_normalization(self) -> Normalization:
        return Normalization.from_dict(self.normalization)

    @property
    def task_kind(self) -> Task:
        return task_named(self.task)

    @property
    def fbank(self) -> dict:
        """The parameters of the front-end its inputs are computed with (the Kaldi fbank recipe's, with what it
        records on top)."""
        return {**RECIPE_FEATURES, **self.features}

    @property
    def frontend_name(self) -> str:
        return self.features.get("frontend", "fbank")


def trained_on(store, normalization: Normalization | None = None) -> dict:
    """The Checkpoint fields a feature store decides (pipeline/stores/features.py): what the model is fed (frames, mel
    bins, fbank, normalisation: the run's training statistics unless given), what it predicts (classes, task) and
    which store and run it was trained on. Every checkpoint made from a store is described through here."""
    clips = {split: int((store.split == split).sum()) for split in ("train", "val", "test")}
    return {"num_classes": len(store.classes), "num_frames": store.num_frames, "num_mel_bins": store.num_mel_bins,
            "classes": list(store.classes), "task": "multi-label" if store.multi_label else "single-label",
            "normalization": (normalization or store.normalization).as_dict(),
            "features": dict(store.group.attrs.get("feature_params", {})), "run": store.run,
            "features_fingerprint": store.fingerprint,
            "dataset": {**dict(store.group.attrs.get("dataset", {})), "clips": clips}}


def save_checkpoint(path: Path, model: nn.Module, meta: Checkpoint, ensemble: list[dict] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = meta.model_copy(update={"code": code_version()})
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"schema_version": SCHEMA_VERSION, "weights": model.state_dict(), "ensemble": ensemble,
                "meta": meta.model_dump()}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint under the final name


def is_checkpoint(obj) -> bool:
    """Whether a loaded file is a cmkd checkpoint (any version)."""
    return isinstance(obj, dict) and ("schema_version" in obj or ("model" in obj and "model_config" in obj))


def parse(obj: dict, path: Path) -> tuple[dict, list[dict] | None, Checkpoint]:
    """(weights, ensemble weights or None, description) of a loaded checkpoint of any known version."""
    version = obj.get("schema_version", 1)
    if version == 1:
        obj = _upgrade_v1(obj, path)
    elif version != SCHEMA_VERSION:
        raise CheckpointError(f"{path}: checkpoint schema version {version}; this cmkd reads versions 1 to "
                              f"{SCHEMA_VERSION} (a newer cmkd wrote it: upgrade cmkd)")
    try:
        meta = Checkpoint.model_validate(obj["meta"])
    except ValidationError as e:
        raise CheckpointError(f"{path}: not a valid cmkd checkpoint ({e.error_count()} problems: "
                              + "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
                              + ")") from None
    return obj["weights"], obj.get("ensemble"), meta


V1_RENAMED = {"model_config": "network"}
V1_REQUIRED = ("model_config", "num_classes", "num_frames", "num_mel_bins", "classes", "normalization")


def _upgrade_v1(obj: dict, path: Path) -> dict:
    """A checkpoint written before the schema (flat keys) in version 2's form, or a refusal saying why."""
    missing = [key for key in V1_REQUIRED if not obj.get(key)]
    if missing:
        raise CheckpointError(f"{path}: an old cmkd checkpoint (schema version 1) without {', '.join(missing)}: "
                              "it does not say how its inputs were normalised or what it predicts, so it cannot be "
                              "fed correctly; train it again, or `cmkd convert` the model it came from")
    meta = {V1_RENAMED.get(k, k): v for k, v in obj.items() if k not in ("model", "ensemble", "multi_label")}
    meta["task"] = "multi-label" if obj.get("multi_label") else "single-label"
    for key in ("history", "selection", "features", "code"):  # written as None by some v1 writers
        if meta.get(key) is None:
            meta.pop(key, None)
    return {"weights": obj["model"], "ensemble": obj.get("ensemble"), "meta": meta}


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[dict, list[dict] | None, Checkpoint]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    obj = torch.load(path, map_location=device, weights_only=True)
    if not is_checkpoint(obj):
        raise CheckpointError(f"{path}: not a cmkd checkpoint (`cmkd convert` turns the AST repository's, Hugging "
                              "Face's and PSLA's files into one)")
    return parse(obj, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model from the config stored in the checkpoint (not from params.yaml) and load its weights.

    A checkpoint saved with `ensemble` weights (train.ensemble_last) loads as the Ensemble of those epochs' models.
    """
    weights, ensemble, meta = read_checkpoint(path, device)

    def build(state: dict) -> nn.Module:
        model = build_model(meta.network, meta.num_classes, meta.num_frames, meta.num_mel_bins)
        model.load_state_dict(state)
        return model

    model = Ensemble([build(w) for w in ensemble]) if ensemble else build(weights)
    return model.to(device).eval(), meta


def teacher_record(path: Path, meta: Checkpoint) -> dict:
    """How a cache or a student names the teacher checkpoint it came from."""
    return {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path), "architecture": meta.architecture,
            "model_config": meta.network}


def check_trained_on(meta: Checkpoint, path: Path, store) -> None:
    """Refuse to run a checkpoint over a feature store other than the one it was trained on."""
    if meta.features_fingerprint != store.fingerprint:
        raise StoreMismatchError(f"{path} was trained on another feature store than {store.path}")
    if (meta.run or "main") != store.run:
        raise StoreMismatchError(f"{path} was trained in run {meta.run or 'main'!r}, not {store.run!r}: "
                                 f"its training clips may be this run's test clips")
    if meta.classes != store.classes:
        raise StoreMismatchError(f"{path} predicts other classes than {store.path} holds")
