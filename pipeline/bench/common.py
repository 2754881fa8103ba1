"""What every section of the benchmark shares: the sizes, the throwaway workspace's params, the results table, random
checkpoints and plans."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.batches import training_plan
from ..models import build_model
from ..models.checkpoint import Checkpoint, save_checkpoint, trained_on
from ..stores.features import FeatureStore
from ..validation import settings_from


@dataclass(frozen=True)
class Size:
    clips: int
    clip_seconds: float
    frames: int
    batch: int      # a student's batch, unless its family sets its own (Family.bench_batch)
    steps: int  # timed steps (or batches) per measurement, after `warmup` untimed ones
    warmup: int
    repeats: int  # rounds of the training measurements; each row is their median
    workers: int
    fbank_batch: int


SIZES = {
    "tiny": Size(clips=40, clip_seconds=1.0, frames=100, batch=8, steps=3, warmup=1, repeats=1, workers=2,
                 fbank_batch=8),
    "cpu": Size(clips=200, clip_seconds=5.0, frames=500, batch=16, steps=20, warmup=3, repeats=3, workers=2,
                fbank_batch=32),
    "gpu": Size(clips=1500, clip_seconds=10.0, frames=1024, batch=48, steps=60, warmup=8, repeats=3, workers=12,
                fbank_batch=256),
}


NUM_CLASSES = 10


def bench_models(size_name: str, rows: str = "bench_models") -> dict[str, str]:
    """family -> the model of it the size times (each family's `bench_models` / `export_models`)."""
    from ..models import all_families

    return {f.name: getattr(f, rows)[size_name] for f in all_families() if size_name in getattr(f, rows)}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)

@contextmanager
def inside(folder: Path):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)


def model_config(name: str) -> dict:
    """A registered model with its family's default settings (pipeline/models)."""
    return {"name": name}


AUGMENT = {"mixup": 0.5, "mixup_alpha": 10.0, "freq_mask": 24}  # time_mask: a fifth of the frames


def workspace_settings(size: "Size", teacher: str = "efficientnet_test", student: str = "ast_test"):
    """The params the benchmark's workspace runs with: the built-in generator at the size's scale."""
    return settings_from({
        "data": {"source": "builtin", "num_classes": NUM_CLASSES, "clips_per_class": size.clips // NUM_CLASSES,
                 "clip_seconds": size.clip_seconds, "split": {"val": 0.2, "test": 0.1}},
        "features": {"target_frames": size.frames, "clips_per_shard": 64},
        "models": {"teacher": model_config(teacher), "student": model_config(student)},
        "teacher": "teacher", "student": "student",
        "augment": {**AUGMENT, "time_mask": max(1, size.frames // 5)},
        "train": {"batch_size": size.batch, "num_workers": size.workers},
        "dump": {"batch_size": 2 * size.batch, "num_workers": size.workers},
    }, "the benchmark's settings")


class Results:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, section: str, name: str, value: float, unit: str, detail: str = "",
            runs: list[float] | None = None) -> None:
        self.rows.append({"section": section, "name": name, "value": round(float(value), 3), "unit": unit,
                          "detail": detail, **({"runs": [round(float(r), 3) for r in runs]} if runs else {})})
        print(f"  {section:9s} {name:42s} {value:12.1f} {unit} {detail}", flush=True)

    def value(self, section: str, name: str) -> float:
        return next(r["value"] for r in self.rows if r["section"] == section and r["name"] == name)


def random_plan(store: FeatureStore, batch: int, count: int, seed: int, views: int = 0):
    """`count` random training batches with their augmentation seeds, as an epoch's plan draws them."""
    rng, rows, plan = np.random.default_rng(seed), np.arange(len(store.clip_ids)), []
    while len(plan) < count:
        plan += training_plan(rng, rows, batch, views=views)
    return plan[:count]


def random_checkpoint(name: str, path: Path, classes: list[str], frames: int, bins: int = 128,
                      normalization: dict | None = None, store: FeatureStore | None = None,
                      features: dict | None = None) -> Path:
    """A checkpoint of model `name` with random weights (what the benchmark times does not depend on them): for the
    workspace's feature store when given, else for `classes`, `frames` and `normalization`."""
    cfg = build_model_config(name)
    if store is not None:
        described = trained_on(store)
    else:
        described = {"num_classes": len(classes), "num_frames": frames, "num_mel_bins": bins, "classes": classes,
                     "normalization": normalization, "features": features or {}}
    model = build_model(cfg, described["num_classes"], described["num_frames"], described["num_mel_bins"])
    save_checkpoint(path, model, Checkpoint(role="bench", architecture=name, network=cfg, **described, seed=0,
                                            note="random weights, made by cmkd bench"))
    return path


def build_model_config(name: str) -> dict:
    from ..models import config_class

    return config_class(name).model_validate(model_config(name)).model_dump()
