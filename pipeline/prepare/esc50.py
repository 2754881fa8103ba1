"""ESC-50 in its official layout: meta/esc50.csv (filename, fold, target, category, ...) and audio/.

The AST recipe trains on four folds and tests on the fifth, five times: params `runs: [fold1, ..., fold5]`
(pipeline/runs.py). Every clip keeps its official fold; a stable `val_fraction` of the clips is marked `val` and is
held out of training for monitoring (and for train.select: best) in every run where it is not the test fold.
ESC-50 cuts several clips from one Freesound recording (`src_file`); the recording (within its fold) is each
clip's group, so the validation clips never share a recording with the training clips. The official folds keep a
recording in one fold, but for 4 of the 1,524 recordings; the folds are kept as published.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..manifest import ManifestError, hash_split
from . import source

FOLDS = (1, 2, 3, 4, 5)


@source("esc50")
def read(data, folder: Path) -> tuple[list[dict], list[str]]:
    root, val_fraction = Path(data.root), data.split.val
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise ManifestError(f"{meta}: not found (ESC-50's official layout has meta/esc50.csv and audio/)")
    with open(meta, newline="") as f:
        entries = list(csv.DictReader(f))
    names = {}
    for line, e in enumerate(entries, start=2):
        target, category = int(e["target"]), e["category"]
        if names.setdefault(target, category) != category:
            raise ManifestError(f"{meta}:{line}: target {target} is {category!r} here and {names[target]!r} before")
    classes = [names[t] for t in sorted(names)]  # ordered by ESC-50's target index
    rows = []
    for e in entries:
        clip_id = Path(e["filename"]).stem
        clip_fold = int(e["fold"])
        if clip_fold not in FOLDS:
            raise ManifestError(f"{meta}: {e['filename']} is in fold {clip_fold}, ESC-50 has folds {FOLDS}")
        group = f"{clip_fold}-{e['src_file']}" if e.get("src_file") else ""
        split = hash_split(group or clip_id, {"val": val_fraction})
        rows.append({"clip_id": clip_id, "path": str((root / "audio" / e["filename"]).resolve()),
                     "labels": [e["category"]], "split": split, "fold": clip_fold, "group": group})
    return rows, classes
