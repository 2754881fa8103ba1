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
import json
import pkgutil
from pathlib import Path
from typing import Callable

from .. import layout
from ..errors import ParamsError
from ..manifest import Clip, ManifestError, read_manifest, write_manifest

SOURCES: dict[str, Callable] = {}


def source(name: str):
    """Register a reader: (data settings, manifest folder) -> (manifest rows, classes)."""
    def register(reader: Callable) -> Callable:
        if name in SOURCES:
            raise ValueError(f"data source {name!r} registered twice")
        SOURCES[name] = reader
        return reader
    return register


def source_problems(name: str) -> list[str]:
    """What is wrong with params `data.source` (a line naming the key), or nothing."""
    if name in SOURCES:
        return []
    import difflib

    close = difflib.get_close_matches(name, SOURCES, n=1)
    return [f"data.source = {name!r}: not a data source ({'did you mean ' + close[0] + '? ' if close else ''}"
            f"have {', '.join(sorted(SOURCES))})"]


def read_dataset(data, folder: Path) -> tuple[list[Clip], list[str]]:
    """The dataset params `data` describe as folder/manifest.csv + classes.txt, validated: every problem at once
    (labels, splits, duplicate ids, groups across splits). They are written under a temporary name and take the
    place of the old ones only once valid, so a bad dataset leaves an earlier manifest as it was. In a scratch
    folder (`cmkd check`) the problems name the dataset, not the scratch copy of its manifest."""
    folder = Path(folder)
    problems = source_problems(data.source)
    if problems:
        raise ParamsError("params: 1 problem\n  " + problems[0])
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
    """The stage: params `data` -> data/raw (manifest.csv, classes.txt) and data/raw/source.json, where the dataset
    was read from (the feature store, and so every checkpoint, records it)."""
    data = settings.data
    read_dataset(data, layout.RAW)
    source = {"source": data.source, "from": data.manifest or data.root or data.audioset.train or data.audioset.test}
    (layout.RAW / "source.json").write_text(json.dumps(source) + "\n")


for _module in pkgutil.iter_modules(__path__):  # fills SOURCES: every source is a module of this package
    importlib.import_module(f"{__name__}.{_module.name}")
