"""AudioSet as the AST recipe's data files: one JSON per split, {"data": [{"wav": path, "labels": "mid,mid"}]},
and the class index CSV (index, mid, display_name). Works for the balanced and the full set alike.

Labels come as mids and are mapped to display names through the class index (class order = its index column).
Without a validation JSON, a stable `val_fraction` of the training list is held out.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..manifest import ManifestError, hash_split
from . import source


@source("audioset")
def read(data, folder: Path) -> tuple[list[dict], list[str]]:
    files, class_index, val_fraction = data.audioset.model_dump(), Path(data.audioset.class_index), data.split.val
    with open(class_index, newline="") as f:
        entries = sorted((int(e["index"]), e["mid"], e["display_name"]) for e in csv.DictReader(f))
    classes = [name for _, _, name in entries]
    by_mid = {mid: name for _, mid, name in entries}
    rows, seen = [], set()
    for split in ("train", "val", "test"):
        if not files.get(split):
            continue
        path = Path(files[split])
        try:
            data = json.loads(path.read_text())["data"]
        except (OSError, ValueError, KeyError) as e:
            raise ManifestError(f"{path}: not an AST data file ({e})") from e
        for i, entry in enumerate(data):
            unknown = [mid for mid in entry["labels"].split(",") if mid not in by_mid]
            if unknown:
                raise ManifestError(f"{path}: entry {i} ({entry['wav']}) has labels {unknown} not in {class_index}")
            wav = (path.parent / entry["wav"]).resolve()
            clip_id = wav.stem if wav.stem not in seen else f"{split}/{wav.stem}"
            seen.add(clip_id)
            row_split = split if split != "train" or files.get("val") else hash_split(clip_id, {"val": val_fraction})
            labels = [by_mid[m] for m in entry["labels"].split(",")]
            rows.append({"clip_id": clip_id, "path": str(wav), "labels": labels,
                         "split": row_split})
    if not rows:
        raise ManifestError("AudioSet: no data files given (data.audioset.train / val / test)")
    return rows, classes
