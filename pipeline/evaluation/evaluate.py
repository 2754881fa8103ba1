"""Stages `evaluate_teacher`, `evaluate_student`, `evaluate_baseline`: test-split metrics of a checkpoint.

results/<split>/seed<k>/<role>/metrics.json holds the numbers `dvc metrics` and `dvc exp show` tabulate;
classes.json beside it holds the per-class values (AP and AUC, or accuracy and the confusion counts) and the
classes that could not be scored, which the report and `cmkd inspect` compare across roles.
"""
from __future__ import annotations

import json

from .. import layout
from ..models.checkpoint import check_trained_on, input_normalizer, load_checkpoint
from ..runs import Run
from ..runtime import device
from ..stores import FeatureStore
from ..training.batches import BatchSource, ZarrRows
from .inference import predict
from .metrics import compute_metrics


def evaluate(settings, role: str, run: Run) -> dict:
    store = FeatureStore(layout.FEATURES, run.split)
    path = layout.checkpoint(role, run)
    model, ckpt = load_checkpoint(path, device())
    check_trained_on(ckpt, path, store)
    rows = store.indices("test")
    source = BatchSource(ZarrRows(store), num_workers=settings.train.num_workers)
    logits = predict(model, source, rows, settings.train.batch_size, input_normalizer(ckpt, store))
    metrics = compute_metrics(logits, store.labels[rows], store.multi_label, store.classes)
    per_class = {**metrics.pop("per_class"), "unscored": metrics.pop("classes_unscored")}
    result = {**metrics, "clips": int(len(rows)), "run": run.split, "seed": run.seed,
              "model": ckpt["model_config"]["name"], "architecture": ckpt["architecture"]}
    layout.results_dir(role, run).mkdir(parents=True, exist_ok=True)
    layout.metrics(role, run).write_text(json.dumps(result, indent=2) + "\n")
    layout.per_class(role, run).write_text(json.dumps(per_class, indent=1) + "\n")
    return result
