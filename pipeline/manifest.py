"""The manifest: one row per clip (clip_id, path, labels, split, fold, group) plus the ordered class list.

The contract between the prepare stage and the features stage: every dataset source (pipeline/prepare) is reduced
to this form, so the features stage has one input format. Paths are relative to the manifest's folder; labels are
class names joined by ';'. An empty label field is a clip with none of the classes: a legal all-zero target in
multi-label data (a negative that mAP and AUC need), an error in single-label data. `group` names what clips
must not be split across (a speaker, recording, site or session): every split keeps a group's clips together.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

COLUMNS = ("clip_id", "path", "labels", "split", "fold", "group")  # fold: the dataset's own fold number, or
# empty; group: the speaker / recording / site the clip belongs to, or empty (the clip is its own group)
SPLITS = ("train", "val", "test")


class ManifestError(InputError, ValueError):
    pass


@dataclass(frozen=True)
class Clip:
    clip_id: str
    path: Path        # absolute, resolved against the manifest's folder
    labels: tuple[str, ...]
    split: str
    fold: int = 0     # the dataset's own fold (ESC-50: 1..5), 0 when it has none
    group: str = ""   # what the clip must not be split from (speaker, recording, ...); "" = its own group

    @property
    def group_key(self) -> str:
        return self.group or self.clip_id


MAX_FIELD = 64 * 1024  # characters in one field: a label list or a path is never longer; a stray quote makes one


def read_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """A CSV's rows as (line number, row), refusing what the csv module would misread or choke on: not UTF-8, a NUL
    byte, a field longer than MAX_FIELD (an unclosed quote), a row with more or fewer fields than the header, a
    header without the `required` columns (named with the columns found, which a wrong delimiter shows)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: not UTF-8 text (byte {path.read_bytes()[e.start]:#04x}); save the "
                            "manifest as UTF-8") from None
    if "\0" in text:
        raise ManifestError(f"{path}:{text[: text.index(chr(0))].count(chr(10)) + 1}: a NUL byte; not a CSV file")
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader, None)
        if not header:
            raise ManifestError(f"{path}: empty (expected a header line with {', '.join(required)})")
        header = [name.strip() for name in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(f"{path}: missing columns {missing} (the header holds {header[:8]}; columns are "
                                "separated by commas)")
        rows = []
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != len(header):
                raise ManifestError(f"{path}:{line}: {len(fields)} fields, the header has {len(header)} (a comma "
                                    "inside a field must be quoted)")
            if max(len(f) for f in fields) > MAX_FIELD:
                raise ManifestError(f"{path}:{line}: a field of over {MAX_FIELD} characters (an unclosed quote?)")
            rows.append((line, dict(zip(header, fields))))
    except csv.Error as e:
        raise ManifestError(f"{path}:{reader.line_num}: not readable as CSV ({e})") from None
    return rows


def write_manifest(path: Path, rows: list[dict], classes: list[str], classes_path: Path | None = None) -> None:
    """manifest.csv and, beside it (or at `classes_path`), classes.txt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({"fold": "", "group": "", **row, "labels": ";".join(row["labels"])})
    (classes_path or path.parent / "classes.txt").write_text("".join(c + "\n" for c in classes))


def read_classes(path: Path) -> list[str]:
    try:
        classes = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise ManifestError(f"{path}: class list not found (data.classes)") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e.reason})") from None
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise ManifestError(f"{path}: duplicate class names {twice[:5]}")
    return classes


def read_manifest(path: Path, classes: list[str], multi_label: bool = True) -> list[Clip]:
    """Parse and validate: every label a known class, every clip id unique, every split known, a clip with no label
    or several labels only in multi-label data, and no group in two splits or two folds. Every problem is listed
    in one ManifestError, not only the first."""
    path = Path(path)
    known = set(classes)
    clips, seen, problems = [], set(), []
    unlabelled, several = [], []
    for line, row in read_rows(path, COLUMNS[:4]):
        where = f"{path}:{line} ({row['path']})"
        labels = tuple(label for label in (row["labels"] or "").split(";") if label)
        unknown = [label for label in labels if label not in known]
        fold = (row.get("fold") or "0").strip()
        if unknown:
            problems.append(f"{where}: labels {unknown} are not in the class list")
        if not labels and not multi_label:
            unlabelled.append(where)
        if len(labels) > 1 and not multi_label:
            several.append(f"{where}: {row['clip_id']} ({'; '.join(labels)})")
        if row["split"] not in SPLITS:
            problems.append(f"{where}: split {row['split']!r} is not one of {SPLITS}")
        if row["clip_id"] in seen:
            problems.append(f"{where}: duplicate clip id {row['clip_id']!r}")
        if not fold.isdigit():
            problems.append(f"{where}: fold {fold!r} is not a whole number")
            fold = "0"
        seen.add(row["clip_id"])
        clips.append(Clip(row["clip_id"], (path.parent / row["path"]).resolve(), labels, row["split"], int(fold),
                          (row.get("group") or "").strip()))
    if unlabelled:
        problems.append(f"{len(unlabelled)} clips have no label, which single-label data does not allow (set "
                        f"data.multi_label: true if a clip may have none of the classes):\n    "
                        + "\n    ".join(unlabelled))
    if several:
        problems.append(f"{len(several)} clips have several labels, but data.multi_label is false (set "
                        f"data.multi_label: true for multi-label data):\n    " + "\n    ".join(several))
    problems += _groups_split(clips)
    if problems:
        raise ManifestError(f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}\n  "
                            + "\n  ".join(problems))
    if not clips:
        raise ManifestError(f"{path}: no clips")
    return clips


def _groups_split(clips: list[Clip]) -> list[str]:
    """A group (speaker, recording, ...) with clips in two splits or two folds leaks from training into testing."""
    splits, folds = {}, {}
    for clip in clips:
        if clip.group:
            splits.setdefault(clip.group, set()).add(clip.split)
            folds.setdefault(clip.group, set()).add(clip.fold)
    return ([f"group {g!r} has clips in splits {sorted(s)}: a group must stay in one split" for g, s in splits.items()
             if len(s) > 1] +
            [f"group {g!r} has clips in folds {sorted(f)}: a group must stay in one fold" for g, f in folds.items()
             if len(f) > 1])


def class_counts(clips: list[Clip], classes: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(classes, 0)
    for clip in clips:
        for label in clip.labels:
            counts[label] += 1
    return counts


def hash_split(key: str, fractions: dict) -> str:
    """A stable split from a key alone (the clip's group, or its id when it has none): adding clips never moves
    existing ones, and the clips of one group always land in the same split."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32
    test, val = fractions.get("test", 0), fractions["val"]
    return "test" if u < test else "val" if u < test + val else "train"
