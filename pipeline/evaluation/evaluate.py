"""Stages `evaluate@<arch>` and `evaluate_student@<direction>`: test-split metrics of a run's model.

results/runs/<split>/seed<k>/<name>/metrics.json holds the numbers `dvc metrics` and `dvc exp show` tabulate;
classes.json beside it the per-class values (AP and AUC, or accuracy and the confusion counts) and the classes that
could not be scored, which the report and `cmkd inspect` compare across roles. data/test_logits/ keeps every test
clip's logits and labels, which the report resamples for the intervals of its differences.
"""
from __future__ import annotations

import json

import numpy as np

from .. import layout
from ..data.batches import BatchSource, ZarrRows
from ..models.checkpoint import check_trained_on, load_checkpoint
from ..runs import Run
from ..runtime import device
from ..stores.features import FeatureStore
from ..task import metrics, task_for
from .inference import predict


def evaluate(settings, name: str, run: Run) -> dict:
    """Score the model `name` (a layout model name: `cnn`, `forward/student`, ...) of `run` on its test clips."""
    store = FeatureStore(layout.FEATURES, run.split)
    path = layout.checkpoint(name, run)
    model, meta = load_checkpoint(path, device())
    check_trained_on(meta, path, store)
    rows, val_rows = store.indices("test"), store.indices("val")
    source = BatchSource(ZarrRows(store), num_workers=settings.train.num_workers)
    logits = predict(model, source, rows, settings.train.batch_size, meta.input_normalization)
    task = task_for(store.multi_label)
    scores = metrics.compute(task, logits, store.labels[rows], store.classes)
    per_class = {**scores.pop("per_class"), "unscored": scores.pop("classes_unscored")}
    # the model as saved scored on the validation clips too: what settings are chosen by (cmkd compare)
    val = task.score(predict(model, source, val_rows, settings.train.batch_size, meta.input_normalization),
                           store.labels[val_rows])
    result = {**scores, f"val_{task.headline}": val, "clips": int(len(rows)), "val_clips": int(len(val_rows)),
              "run": run.split, "seed": run.seed, "task": task.name, "model": meta.network["name"],
              "architecture": meta.architecture, "distill": meta.distill}
    layout.results_dir(name, run).mkdir(parents=True, exist_ok=True)
    layout.metrics(name, run).write_text(json.dumps(result, indent=2) + "\n")
    layout.per_class(name, run).write_text(json.dumps(per_class, indent=1) + "\n")
    out = layout.test_logits(name, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, clip_ids=np.array(store.clip_ids[rows].tolist()), logits=logits, labels=store.labels[rows])
    return result
