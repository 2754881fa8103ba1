"""FSD50K in its official layout: FSD50K.ground_truth/{dev,eval,vocabulary}.csv, FSD50K.{dev,eval}_audio/*.wav.

dev.csv: fname, labels (comma-separated class names), mids, split (train | val); eval.csv: fname, labels, mids;
vocabulary.csv: index, label, mid (no header). Multi-label; dev's own train/val split is kept, eval is the test set.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..manifest import ManifestError
from . import source


@source("fsd50k")
def read(data, folder: Path) -> tuple[list[dict], list[str]]:
    root = Path(data.root)
    truth = root / "FSD50K.ground_truth"
    for name in ("dev.csv", "eval.csv", "vocabulary.csv"):
        if not (truth / name).is_file():
            raise ManifestError(f"{truth / name}: not found (FSD50K's official layout)")
    with open(truth / "vocabulary.csv", newline="") as f:
        vocabulary = sorted((int(index), label) for index, label, _mid in csv.reader(f))
    classes = [label for _, label in vocabulary]
    rows = []
    for part, audio in (("dev", "FSD50K.dev_audio"), ("eval", "FSD50K.eval_audio")):
        with open(truth / f"{part}.csv", newline="") as f:
            for line, e in enumerate(csv.DictReader(f), start=2):
                split = "test" if part == "eval" else e["split"]
                if split not in ("train", "val", "test"):
                    raise ManifestError(f"{truth / part}.csv:{line}: split {split!r} is neither train nor val")
                path = (root / audio / f"{e['fname']}.wav").resolve()
                rows.append({"clip_id": f"{part}/{e['fname']}", "path": str(path),
                             "labels": e["labels"].split(","), "split": split})
    return rows, classes
