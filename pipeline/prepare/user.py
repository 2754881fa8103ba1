"""Your own data: a CSV manifest (data.source: manifest).

Columns: `path` (relative to the CSV) and `labels` (class names separated by ';'; empty for a multi-label clip
with none of the classes), optionally `split` (train / val / test), `clip_id`, `fold` (the runs foldK test on
fold K) and `group` (speaker, recording, site: the clips of a group never straddle two splits).
"""
from __future__ import annotations

from pathlib import Path

from ..manifest import ManifestError, hash_split, read_classes, read_rows
from . import source


@source("manifest")
def read(data, folder: Path) -> tuple[list[dict], list[str]]:
    """A user's manifest (data.manifest, and optionally data.classes) in the pipeline's form.

    The source CSV needs `path` and `labels` (';'-separated class names), and may have `fold` (for runs foldK,
    pipeline/runs.py) and `group`; `clip_id` defaults to the path without its extension and `split` to a stable
    draw from a hash of the clip's group, or of its id when it has none (fractions from params data.split), so
    adding clips never moves existing ones between splits and a group's clips stay together. Paths are resolved
    against the source's folder and written absolute; the audio stays where it is.
    """
    source, classes_file, split_fractions = Path(data.manifest), data.classes, data.split.model_dump()
    rows = read_rows(source, ("path", "labels"))
    empty = [line for line, row in rows if not row["path"].strip()]
    if empty:
        raise ManifestError(f"{source}: {len(empty)} rows with an empty path (lines {', '.join(map(str, empty[:10]))}"
                            f"{' ...' if len(empty) > 10 else ''})")
    if classes_file:
        classes = read_classes(Path(classes_file))
    else:
        classes = sorted({label for _, row in rows for label in row["labels"].split(";") if label})
    out_rows = []
    for _, row in rows:
        path = (source.parent / row["path"]).resolve()
        clip_id = row.get("clip_id") or str(Path(row["path"]).with_suffix(""))
        group = (row.get("group") or "").strip()
        split = row.get("split") or hash_split(group or clip_id, split_fractions)
        labels = [label for label in (row["labels"] or "").split(";") if label]
        out_rows.append({"clip_id": clip_id, "path": str(path), "labels": labels, "split": split,
                         "fold": row.get("fold") or "", "group": group})
    return out_rows, classes
