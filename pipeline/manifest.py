"""The manifest: one row per clip (clip_id, path, labels, split) plus the ordered class list.

Every dataset source (the built-in generator, and user data) is reduced to this form, so the features stage has
one input format. Paths are relative to the manifest's folder; labels are class names joined by ';'.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .datasets import hash_split

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


def import_manifest(source: Path, classes_file: Path | None, split_fractions: dict, out_dir: Path) -> None:
    """Bring a user's manifest into the pipeline's form at out_dir/manifest.csv and out_dir/classes.txt.

    The source CSV needs `path` and `labels` (';'-separated class names), and may have `fold` (for runs foldK,
    pipeline/runs.py); `clip_id` defaults to the path without
    its extension and `split` to a stable draw from a hash of the clip id (fractions from params data.split), so
    adding clips never moves existing ones between splits. Paths are resolved against the source's folder and
    written absolute; the audio stays where it is.
    """
    source = Path(source)
    with open(source, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", "labels"} - set(reader.fieldnames or ())
        if missing:
            raise ManifestError(f"{source}: missing columns {sorted(missing)}")
        rows = list(reader)
    if classes_file:
        classes = read_classes(classes_file)
    else:
        classes = sorted({label for row in rows for label in row["labels"].split(";") if label})
    out_rows = []
    for row in rows:
        path = (source.parent / row["path"]).resolve()
        clip_id = row.get("clip_id") or str(Path(row["path"]).with_suffix(""))
        split = row.get("split") or hash_split(clip_id, split_fractions)
        out_rows.append({"clip_id": clip_id, "path": str(path), "labels": row["labels"].split(";"), "split": split,
                         "fold": row.get("fold") or ""})
    write_manifest(Path(out_dir) / "manifest.csv", out_rows, classes)
    read_manifest(Path(out_dir) / "manifest.csv", classes)  # validate now: labels, splits, duplicate ids
