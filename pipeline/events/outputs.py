"""Where the events go: a DCASE table, JSON, an Audacity label track and a timeline picture per file.

  events.tsv    filename, onset, offset, event_label (tab-separated, the DCASE challenges' format, which sed_eval and
                sed_scores_eval read)
  events.json   per file: its duration, hop, window, and the events with their confidence
  <file>.txt    Audacity's label track (onset, offset, label; File > Import > Labels)
  <file>.png    the timeline of the classes that sound (scores over time, the threshold a dashed line) with the
                events as boxes and, where the recording's own events are known (`--score`), those as bars
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .segments import Event, smoothed
from .timeline import Timeline


def write_tables(out: Path, found: dict[Path, list[Event]], timelines: dict[Path, Timeline],
                 window_seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "events.tsv", "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["filename", "onset", "offset", "event_label"])
        for path, events in found.items():
            writer.writerows([path.name, e.onset, e.offset, e.label] for e in events)
    (out / "events.json").write_text(json.dumps({str(path): {
        "duration": timelines[path].duration, "hop": timelines[path].step, "window": window_seconds,
        "timeline": timelines[path].method, "gate_db": timelines[path].gate_db,
        "events": [{"label": e.label, "onset": e.onset, "offset": e.offset, "confidence": round(e.confidence, 4)}
                   for e in events]} for path, events in found.items()}, indent=1) + "\n")
    for path, events in found.items():
        (out / f"{path.stem}.txt").write_text("".join(f"{e.onset:.3f}\t{e.offset:.3f}\t{e.label}\n" for e in events))


def draw_timeline(out: Path, timeline: Timeline, events: list[Event], thresholds: np.ndarray, smooth: float,
                  most: int = 8, reference: list[tuple[float, float, str]] = ()) -> Path:
    """The `most` classes with the highest scores (or an event, found or annotated), each a lane: smoothed score
    over time, its threshold, its events as boxes and its annotated events (`reference`) as bars under them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = smoothed(timeline, smooth)
    known = [(a, b, c) for a, b, c in reference if c in timeline.classes]
    with_events = {timeline.classes.index(e.label) for e in events} | {timeline.classes.index(c) for *_, c in known}
    ranked = sorted(range(len(timeline.classes)), key=lambda c: (c not in with_events, -scores[:, c].max()))[:most]
    fig, axes = plt.subplots(len(ranked), 1, figsize=(11, 0.75 * len(ranked) + 1.2), sharex=True, squeeze=False)
    times = timeline.times + timeline.step / 2
    shut = (timeline.activity < timeline.gate_db) if timeline.activity is not None else np.zeros(len(times), bool)
    edges = np.flatnonzero(np.diff(np.r_[0, shut.astype(np.int8), 0]))
    for ax, c in zip(axes[:, 0], ranked):
        for a, b in zip(edges[::2], edges[1::2]):  # the gate shut: too quiet for an event
            ax.axvspan(a * timeline.step, b * timeline.step, color="#bbbbbb", alpha=0.3, linewidth=0)
        ax.plot(times, scores[:, c], color="#4c72b0", linewidth=1)
        ax.axhline(thresholds[c], color="grey", linestyle="--", linewidth=0.7)
        for e in (e for e in events if e.label == timeline.classes[c]):
            ax.axvspan(e.onset, e.offset, color="#dd8452", alpha=0.35)
        for a, b, _ in (r for r in known if r[2] == timeline.classes[c]):
            ax.axvspan(a, b, ymin=0, ymax=0.12, color="#55a868")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel(timeline.classes[c], rotation=0, ha="right", va="center", fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{timeline.path.name} ({timeline.method}): scores per {timeline.step:.3g} s step (line), "
                 "threshold (dashed), events (boxes), too quiet for an event (grey)"
                 + (", annotated events (green bars)" if reference else ""), fontsize=9)
    fig.tight_layout()
    path = out / f"{timeline.path.stem}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
