"""Stage `prepare`: the dataset as a manifest in data/raw (manifest.csv + classes.txt), from any supported source.

A source is one module of this package that registers a reader with `@source("name")`; `data.source` in
params.yaml picks it. A reader takes the data settings and the folder the manifest goes to (a generated dataset
writes its audio there) and returns the manifest rows (clip_id, path, labels, split, fold, group) and the ordered
class list; `read_dataset` writes and validates them once for every source (pipeline/manifest.py), for the prepare
stage and for `cmkd check` alike:

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
from pathlib import Path
from typing import Callable

import numpy as np

from .. import layout
from ..manifest import Clip, ManifestError, class_counts, read_manifest, write_manifest
from ..runs import run_split

SOURCES: dict[str, Callable] = {}


def source(name: str):
    """Register a reader: (data settings, manifest folder) -> (manifest rows, classes)."""
    def register(reader: Callable) -> Callable:
        if name in SOURCES:
            raise ValueError(f"data source {name!r} registered twice")
        SOURCES[name] = reader
        return reader
    return register


def read_dataset(data, folder: Path) -> tuple[list[Clip], list[str]]:
    """The dataset params `data` describe as folder/manifest.csv + classes.txt, validated: every problem at once
    (labels, splits, duplicate ids, groups across splits). They are written under a temporary name and take the
    place of the old ones only once valid, so a bad dataset leaves an earlier manifest as it was. In a scratch
    folder (`cmkd check`) the problems name the dataset, not the scratch copy of its manifest."""
    folder = Path(folder)
    rows, classes = SOURCES[data.source](data, folder)
    manifest, classes_file = folder / "manifest.csv", folder / "classes.txt"
    partial, partial_classes = folder / "manifest.csv.partial", folder / "classes.txt.partial"
    write_manifest(partial, rows, classes, partial_classes)
    try:
        clips = read_manifest(partial, classes, data.multi_label)
    except ManifestError as e:
        partial.unlink(missing_ok=True)
        partial_classes.unlink(missing_ok=True)
        named = str(manifest) if folder == layout.RAW else \
            f"data.source {data.source} ({data.manifest or data.root or 'generated'})"
        raise ManifestError(str(e).replace(str(partial), named)) from None
    partial.replace(manifest)
    partial_classes.replace(classes_file)
    return clips, classes


def prepare(settings) -> None:
    clips, classes = read_dataset(settings.data, layout.RAW)
    for line in untrained_classes(clips, classes, settings.runs, settings.data.split.val):
        print(f"warning: {line}")


def untrained_classes(clips: list[Clip], classes: list[str], runs: list[str],
                      val_fraction: float = 0.15) -> list[str]:
    """For each run, the classes no training clip has: the model never sees a positive of them (multi-label data
    drawn from a long tail has such classes; their test AP is then chance)."""
    split, folds = np.array([c.split for c in clips]), np.array([c.fold for c in clips])
    groups = np.array([c.group for c in clips])
    lines = []
    for run in runs:
        try:
            train = run_split(run, split, folds, str(layout.MANIFEST), groups, val_fraction) == "train"
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
