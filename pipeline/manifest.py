"""The manifest: one row per clip (clip_id, path, labels, split) plus the ordered class list.

Every dataset source (the built-in generator, and user data) is reduced to this form, so the features stage has
one input format. Paths are relative to the manifest's folder; labels are class names joined by ';'.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("clip_id", "path", "labels", "split")
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Clip:
    clip_id: str
    path: Path        # absolute, resolved against the manifest's folder
    labels: tuple[str, ...]
    split: str


def write_manifest(path: Path, rows: list[dict], classes: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "labels": ";".join(row["labels"])})
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
        missing = set(COLUMNS) - set(reader.fieldnames or ())
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
            seen.add(row["clip_id"])
            clips.append(Clip(row["clip_id"], (path.parent / row["path"]).resolve(), labels, row["split"]))
    if not clips:
        raise ManifestError(f"{path}: no clips")
    return clips
