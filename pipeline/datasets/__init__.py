"""Readers for the datasets' own layouts. Each returns manifest rows (clip_id, absolute path, labels, split, fold)
and the ordered class list; `pipeline.prepare` writes them as data/raw/manifest.csv and classes.txt.

  esc50     meta/esc50.csv + audio/: 50 classes, 5 official folds; runs fold1..fold5 hold each out in turn
  fsd50k    FSD50K.ground_truth/{dev,eval,vocabulary}.csv + FSD50K.{dev,eval}_audio/: 200 classes, multi-label,
            the official train/val split of dev, eval as test
  audioset  the AST recipe's data files: JSON {"data": [{"wav", "labels": "mid,mid"}]} per split plus the class
            index CSV (index, mid, display_name), balanced or full alike
  folders   one folder per class (a file found under several class folders gets all of them: multi-label)
"""
from __future__ import annotations

import hashlib

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def hash_split(clip_id: str, fractions: dict) -> str:
    """A stable split from the clip id alone: adding clips never moves existing ones."""
    u = int(hashlib.sha256(clip_id.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if u < fractions.get("test", 0) else "val" if u < fractions.get("test", 0) + fractions["val"] else "train"
