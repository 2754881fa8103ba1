"""Stages `evaluate@<arch>` and `evaluate_student@<direction>`: test-split metrics of a run's model, scored from the
logits its training stage kept (held_out.py), without loading the model.

results/runs/<split>/seed<k>/<name>/metrics.json holds the numbers `dvc metrics` and `dvc exp show` tabulate;
classes.json beside it the per-class values (AP and AUC, or accuracy and the confusion counts) and the classes that
could not be scored, which the report and `cmkd inspect` compare across roles.
"""
from __future__ import annotations

import json

from .. import layout
from ..runs import Run
from ..task import metrics, task_for
from . import held_out


def evaluate(name: str, run: Run) -> dict:
    """Score the model `name` (a layout model name: `cnn`, `forward/student`, ...) of `run` on its test clips."""
    logits = held_out.read(layout.held_out_logits(name, run))
    task = task_for(logits.multi_label)
    scores = metrics.compute(task, logits.test.logits, logits.test.labels, logits.classes)
    per_class = {**scores.pop("per_class"), "unscored": scores.pop("classes_unscored")}
    # the model as saved scored on the validation clips too: what settings are chosen by (cmkd compare)
    val = task.score(logits.val.logits, logits.val.labels)
    result = {**scores, f"val_{task.headline}": val, "clips": len(logits.test.labels),
              "val_clips": len(logits.val.labels), "run": run.split, "seed": run.seed, "task": task.name,
              **logits.model}
    layout.metrics(name, run).parent.mkdir(parents=True, exist_ok=True)
    layout.metrics(name, run).write_text(json.dumps(result, indent=2) + "\n")
    layout.per_class(name, run).write_text(json.dumps(per_class, indent=1) + "\n")
    return result
