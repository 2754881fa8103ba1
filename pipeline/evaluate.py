"""Stages `evaluate_teacher`, `evaluate_student`, `evaluate_baseline`: test-split metrics of a checkpoint."""
from __future__ import annotations

import json

from . import layout
from .checkpoint import check_trained_on, load_checkpoint
from .inference import device, predict
from .metrics import compute_metrics
from .stores import FeatureStore


def evaluate(role: str, batch_size: int = 64) -> dict:
    store = FeatureStore(layout.FEATURES)
    model, ckpt = load_checkpoint(layout.checkpoint(role), device())
    check_trained_on(ckpt, layout.checkpoint(role), store)
    rows = store.indices("test")
    metrics = compute_metrics(predict(model, store, rows, batch_size), store.labels[rows], store.multi_label)
    result = {**metrics, "clips": int(len(rows)), "model": ckpt["model_config"]["name"],
              "architecture": ckpt["architecture"]}
    layout.metrics(role).write_text(json.dumps(result, indent=2) + "\n")
    return result
