"""A timeline's scores as events: (class, onset, offset, confidence).

Each class's scores are smoothed by a median filter over `smooth` seconds (a step's vote among its neighbours, which
removes one-step flickers without moving edges as an average would), compared with the class's threshold, and the
runs of steps above it become events: runs closer than `min_gap` seconds are joined (a sound with a brief dip is one
event), events shorter than `min_duration` dropped. An event's confidence is its highest smoothed score. Onsets and
offsets are step edges: the resolution is the hop, and what decides a step is the windows around it (timeline.py).

Thresholds: one for every class, or one per class (a JSON {class: threshold}, as `tune_thresholds` in scoring.py
picks them on validation recordings).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .timeline import Timeline


@dataclass(frozen=True)
class Event:
    label: str
    onset: float
    offset: float
    confidence: float


@dataclass(frozen=True)
class Postprocessing:
    smooth: float = 1.5       # seconds of the median filter (rounded to an odd number of steps; 0: none)
    min_gap: float = 0.5      # runs closer than this are one event
    min_duration: float = 0.0


def smoothed(timeline: Timeline, seconds: float) -> np.ndarray:
    """[steps, classes]: each class's scores through a median filter of `seconds` (an odd number of steps)."""
    width = int(round(seconds / timeline.step)) // 2 * 2 + 1 if seconds > 0 else 1
    if width <= 1 or len(timeline.scores) < 2:
        return timeline.scores
    from scipy.ndimage import median_filter

    return median_filter(timeline.scores, size=(width, 1), mode="nearest")


def read_thresholds(value: str | float, classes: list[str]) -> np.ndarray:
    """One threshold per class: a number for all, or a JSON file {class: threshold} naming every class."""
    try:
        return np.full(len(classes), float(value))
    except ValueError:
        table = json.loads(Path(value).read_text())
        missing = [c for c in classes if c not in table]
        if missing:
            raise ValueError(f"{value}: no threshold for {len(missing)} classes (first: {missing[0]!r})") from None
        return np.array([float(table[c]) for c in classes])


def events(timeline: Timeline, thresholds: np.ndarray, post: Postprocessing = Postprocessing()) -> list[Event]:
    """The timeline's events, by onset."""
    scores = smoothed(timeline, post.smooth)
    step = timeline.step
    found = []
    for c, name in enumerate(timeline.classes):
        active = scores[:, c] >= thresholds[c]
        edges = np.flatnonzero(np.diff(np.r_[0, active.astype(np.int8), 0]))
        runs = list(zip(edges[::2], edges[1::2]))  # [start, end) steps
        joined = []
        for start, end in runs:
            if joined and (start - joined[-1][1]) * step < post.min_gap:
                joined[-1] = (joined[-1][0], end)
            else:
                joined.append((start, end))
        for start, end in joined:
            onset, offset = start * step, min(end * step, timeline.duration)
            if offset - onset >= post.min_duration and offset > onset:
                found.append(Event(name, round(onset, 3), round(offset, 3), float(scores[start:end, c].max())))
    return sorted(found, key=lambda e: (e.onset, e.label))
