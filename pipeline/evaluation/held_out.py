"""A saved model's logits on its run's held-out clips (test and validation), with their ids and labels.

The training stages write them as their last step, from the checkpoint as saved (training/loop.py: `predict_held_out`),
so that an ensemble or an adopted teacher predicts exactly as it will be used; stage evaluate scores them and the
report resamples the test clips for its intervals, neither loading a model (a metric change re-runs no inference).

    data/held_out_logits/<split>/seed<k>/<name>.npz    test_clip_ids, test_logits, test_labels, the same for val,
                                                       and `about`: JSON of the classes, the task and the model
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

SPLITS = ("test", "val")


@dataclass
class Clips:
    clip_ids: np.ndarray
    logits: np.ndarray   # [clips, classes] float32
    labels: np.ndarray   # [clips, classes] multi-hot


@dataclass
class HeldOut:
    classes: list[str]
    multi_label: bool
    model: dict          # model (the network's name), architecture, distill: what metrics.json says it scored
    test: Clips
    val: Clips


def write(path: Path, held_out: HeldOut) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    about = {"classes": held_out.classes, "multi_label": held_out.multi_label, "model": held_out.model}
    arrays = {f"{split}_{field}": getattr(getattr(held_out, split), field) for split in SPLITS
              for field in ("clip_ids", "logits", "labels")}
    partial = path.with_name(path.name + ".partial.npz")  # a killed write leaves no half file under the real name
    np.savez(partial, about=np.array(json.dumps(about)), **arrays)
    partial.replace(path)


def read(path: Path) -> HeldOut:
    if not path.exists():
        raise InputError(f"{path}: no held-out logits; the training stage writes them after it saves the model "
                         "(dvc repro re-runs it)")
    with np.load(path) as f:
        about = json.loads(str(f["about"]))
        splits = {split: Clips(*(f[f"{split}_{field}"] for field in ("clip_ids", "logits", "labels")))
                  for split in SPLITS}
    return HeldOut(about["classes"], about["multi_label"], about["model"], **splits)
