"""Stages `evaluate_teacher`, `evaluate_student`, `evaluate_baseline`: test-split metrics of a checkpoint."""
from __future__ import annotations

import json

from . import layout
from .checkpoint import check_trained_on, load_checkpoint
from .inference import device, predict
from .metrics import compute_metrics
from .stores import FeatureStore


def evaluate(role: str, run: str = "main", batch_size: int = 64) -> dict:
    store = FeatureStore(layout.FEATURES, run)
    model, ckpt = load_checkpoint(layout.checkpoint(role, run), device())
    check_trained_on(ckpt, layout.checkpoint(role, run), store)
    rows = store.indices("test")
    metrics = compute_metrics(predict(model, store, rows, batch_size), store.labels[rows], store.multi_label)
    result = {**metrics, "clips": int(len(rows)), "run": run, "model": ckpt["model_config"]["name"],
              "architecture": ckpt["architecture"]}
    layout.metrics(role, run).parent.mkdir(parents=True, exist_ok=True)
    layout.metrics(role, run).write_text(json.dumps(result, indent=2) + "\n")
    return result
