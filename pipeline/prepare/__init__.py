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

from .. import layout
from ..manifest import ManifestError, read_manifest, write_manifest

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
    if not data.multi_label:
        several = [f"{row['clip_id']} ({'; '.join(row['labels'])})" for row in rows if len(row["labels"]) > 1]
        if several:
            raise ManifestError(f"{len(several)} clips have several labels, but data.multi_label is false (set "
                                f"data.multi_label: true for multi-label data): " + ", ".join(several))
    write_manifest(layout.MANIFEST, rows, classes)
    read_manifest(layout.MANIFEST, classes)  # validate now: labels, splits, duplicate ids


for _module in pkgutil.iter_modules(__path__):  # fills SOURCES: every source is a module of this package
    importlib.import_module(f"{__name__}.{_module.name}")
