"""One folder per class: <root>/<class>/<clip>.wav. A clip found under several class folders (same relative name)
gets all those labels, so a multi-label dataset can be laid out this way too. Splits are a stable hash of the
clip name, with the fractions of params data.split.
"""
from __future__ import annotations

from pathlib import Path

from ..manifest import ManifestError, hash_split
from . import source

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@source("folders")
def read(data, folder: Path) -> tuple[list[dict], list[str]]:
    root, split_fractions = Path(data.root), data.split.model_dump()
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ManifestError(f"{root}: no class folders")
    clips: dict[str, dict] = {}
    for name in classes:
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            clip_id = str(path.relative_to(root / name).with_suffix(""))
            clip = clips.setdefault(clip_id, {"clip_id": clip_id, "path": str(path.resolve()), "labels": [],
                                              "split": hash_split(clip_id, split_fractions)})
            clip["labels"].append(name)
    if not clips:
        raise ManifestError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in the class folders")
    return list(clips.values()), classes
