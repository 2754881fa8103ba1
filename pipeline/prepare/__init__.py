"""Stage `prepare`: the dataset as a manifest in data/raw (manifest.csv + classes.txt), from any supported source.

A source is one module of this package that registers a reader with `@source("name")`; `data.source` in
params.yaml picks it. A reader takes the data settings and returns the manifest rows (clip_id, path, labels, split,
fold) and the ordered class list; prepare checks them once for every source and writes them (pipeline/manifest.py):

  builtin   synthetic.py   generated from data.seed (the built-in dataset)
  manifest  user.py        your CSV (path, labels[, split][, clip_id][, fold])
  esc50     esc50.py       ESC-50's official layout, five folds
  fsd50k    fsd50k.py      FSD50K's official layout, multi-label
  audioset  audioset.py    the AST recipe's JSON data files and class index
  folders   folders.py     one folder per class
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import numpy as np

from .. import layout
from ..manifest import Clip, ManifestError, class_counts, read_manifest, write_manifest
from ..runs import run_split

SOURCES: dict[str, Callable] = {}


def source(name: str):
    """Register a reader: data settings -> (manifest rows, classes)."""
    def register(reader: Callable) -> Callable:
        if name in SOURCES:
            raise ValueError(f"data source {name!r} registered twice")
        SOURCES[name] = reader
        return reader
    return register


def prepare(settings) -> None:
    data = settings.data
    rows, classes = SOURCES[data.source](data)
    write_manifest(layout.MANIFEST, rows, classes)
    # validate now, every problem at once: labels, splits, duplicate ids, groups across splits
    clips = read_manifest(layout.MANIFEST, classes, data.multi_label)
    for line in untrained_classes(clips, classes, settings.runs):
        print(f"warning: {line}")


def untrained_classes(clips: list[Clip], classes: list[str], runs: list[str]) -> list[str]:
    """For each run, the classes no training clip has: the model never sees a positive of them (multi-label data
    drawn from a long tail has such classes; their test AP is then chance)."""
    split, folds = np.array([c.split for c in clips]), np.array([c.fold for c in clips])
    lines = []
    for run in runs:
        try:
            train = run_split(run, split, folds, str(layout.MANIFEST)) == "train"
        except ValueError as e:
            raise ManifestError(str(e)) from e
        counts = class_counts([c for c, t in zip(clips, train) if t], classes)
        missing = [name for name, n in counts.items() if n == 0]
        if missing:
            lines.append(f"run {run}: {len(missing)} of {len(classes)} classes have no training clip: "
                         + ", ".join(missing))
    return lines


for _module in pkgutil.iter_modules(__path__):  # fills SOURCES: every source is a module of this package
    importlib.import_module(f"{__name__}.{_module.name}")
