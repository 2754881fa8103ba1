"""The manifest: one row per clip (clip_id, path, labels, split, fold) plus the ordered class list.

The contract between the prepare stage and the features stage: every dataset source (pipeline/prepare) is reduced
to this form, so the features stage has one input format. Paths are relative to the manifest's folder; labels are
class names joined by ';'.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("clip_id", "path", "labels", "split", "fold")  # fold: the dataset's own fold number, or empty
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Clip:
    clip_id: str
    path: Path        # absolute, resolved against the manifest's folder
    labels: tuple[str, ...]
    split: str
    fold: int = 0     # the dataset's own fold (ESC-50: 1..5), 0 when it has none


def write_manifest(path: Path, rows: list[dict], classes: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({"fold": "", **row, "labels": ";".join(row["labels"])})
    (path.parent / "classes.txt").write_text("".join(c + "\n" for c in classes))


def read_classes(path: Path) -> list[str]:
    classes = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(set(classes)) != len(classes):
        raise ManifestError(f"{path}: duplicate class names")
    return classes


def read_manifest(path: Path, classes: list[str]) -> list[Clip]:
    """Parse and validate: every label must be a known class, every clip id unique, every split known."""
    path = Path(path)
    known = set(classes)
    clips, seen = [], set()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(COLUMNS[:4]) - set(reader.fieldnames or ())
        if missing:
            raise ManifestError(f"{path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line} ({row['path']})"
            labels = tuple(label for label in row["labels"].split(";") if label)
            unknown = [label for label in labels if label not in known]
            if unknown:
                raise ManifestError(f"{where}: labels {unknown} are not in the class list")
            if not labels:
                raise ManifestError(f"{where}: no labels")
            if row["split"] not in SPLITS:
                raise ManifestError(f"{where}: split {row['split']!r} is not one of {SPLITS}")
            if row["clip_id"] in seen:
                raise ManifestError(f"{where}: duplicate clip id {row['clip_id']!r}")
            fold = (row.get("fold") or "0").strip()
            if not fold.isdigit():
                raise ManifestError(f"{where}: fold {fold!r} is not a whole number")
            seen.add(row["clip_id"])
            clips.append(Clip(row["clip_id"], (path.parent / row["path"]).resolve(), labels, row["split"], int(fold)))
    if not clips:
        raise ManifestError(f"{path}: no clips")
    return clips


def hash_split(clip_id: str, fractions: dict) -> str:
    """A stable split from the clip id alone: adding clips never moves existing ones."""
    u = int(hashlib.sha256(clip_id.encode()).hexdigest()[:8], 16) / 2**32
    test, val = fractions.get("test", 0), fractions["val"]
    return "test" if u < test else "val" if u < test + val else "train"
