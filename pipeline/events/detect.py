"""`cmkd detect`: what sounded when in recordings of any length, as a model's timelines (timeline.py) turned into
events (segments.py), written out (outputs.py) and, given the recordings' own events, scored (scoring.py).

A timeline is window voting or, asked for, the model's own per-step scores (timeline.py); steps no louder than the
recording's background are scored 0 (activity.py). Thresholds are one score for every class, a JSON file
{class: threshold}, or picked per class on validation recordings with known events (`tune`), written to
<out>/thresholds.json for the next run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..predict import audio_inputs
from . import outputs, scoring
from .activity import MARGIN_DB
from .segments import Postprocessing, events, read_thresholds
from .timeline import Scorer, Timeline


@dataclass(frozen=True)
class Validation:
    """Validation recordings and their events (a DCASE table), to pick each class's threshold on."""
    recordings: Path
    annotations: Path


class UnknownClasses(InputError, ValueError):
    """--classes names a class the model does not have."""


def chosen_classes(classes: str | None, model_classes: list[str]) -> list[str]:
    """The classes scored and tuned: a file with one class a line, or names joined by commas; every class of the
    model if None."""
    if not classes:
        return model_classes
    chosen = Path(classes).read_text().split("\n") if Path(classes).is_file() else classes.split(",")
    chosen = [c.strip() for c in chosen if c.strip()]
    unknown = [c for c in chosen if c not in model_classes]
    if unknown:
        raise UnknownClasses(f"--classes: not classes of the model: {unknown[:5]}")
    return chosen


def detect(model: Path, audio: list[Path], out: Path, hop: float = 0.5, threshold: str = "0.5",
           tune: Validation | None = None, score: Path | None = None, classes: str | None = None,
           post: Postprocessing = Postprocessing(), pictures: bool = True, batch_size: int = 32,
           progress=None, method: str = "windows", gate_db: float | None = MARGIN_DB,
           quiet: Path | None = None) -> dict:
    """Detect events in `audio` (files, folders, manifests) with checkpoint `model` into `out`; returns a summary
    (events, files, minutes of audio) and, with `score` (the recordings' events), the scores (and, with `quiet`,
    a table of stretches known to hold no event, the false alarms in them). `progress(what, seconds)` is told the
    audio as it is read."""
    report = progress or (lambda what, seconds: None)
    out.mkdir(parents=True, exist_ok=True)
    what = ["audio"]
    scorer = Scorer(model, hop, batch_size, progress=lambda seconds: report(what[0], seconds), method=method,
                    gate_db=gate_db)
    chosen = chosen_classes(classes, scorer.classes)
    if tune is not None:
        what[0] = "validation audio"
        reference = {name: [r for r in rows if r[2] in chosen]
                     for name, rows in scoring.read_annotations(tune.annotations).items()}
        picked = scoring.tune_thresholds(timelines(scorer, audio_inputs([tune.recordings])), reference, post)
        (out / "thresholds.json").write_text(json.dumps(picked, indent=1) + "\n")
        threshold = str(out / "thresholds.json")
    what[0] = "audio"
    found_timelines = timelines(scorer, audio_inputs(audio))
    thresholds = read_thresholds(threshold, scorer.classes)
    keep = set(chosen)
    found = {t.path: [e for e in events(t, thresholds, post) if e.label in keep] for t in found_timelines.values()}
    outputs.write_tables(out, found, {t.path: t for t in found_timelines.values()}, scorer.window_seconds)
    reference = scoring.read_annotations(score) if score is not None else {}
    if pictures:
        for t in found_timelines.values():
            outputs.draw_timeline(out, t, found[t.path], thresholds, post.smooth,
                                  reference=reference.get(t.path.name, []))
    minutes = sum(t.duration for t in found_timelines.values()) / 60
    summary = {"events": sum(len(v) for v in found.values()), "files": len(found), "minutes": minutes,
               "table": str(out / "events.tsv"), "timeline": scorer.method, "gate_db": gate_db}
    if score is not None:
        by_name = {p.name: e for p, e in found.items()}
        reference = {name: reference.get(name, []) for name in by_name}  # the recordings given, no others
        result = {**scoring.sed_eval_scores(by_name, reference, chosen),
                  **scoring.psds(found_timelines, reference, chosen, post.smooth),
                  **scoring.onset_error(by_name, reference, chosen),
                  **(scoring.quiet_alarms(by_name, scoring.read_annotations(quiet)) if quiet else {}),
                  "thresholds": threshold, "timeline": scorer.method, "gate_db": gate_db,
                  "step": next(iter(found_timelines.values())).step if found_timelines else None,
                  "hop": hop, "window": scorer.window_seconds, "collar": scoring.COLLAR,
                  "classes": len(chosen), "minutes": round(minutes, 2)}
        (out / "scores.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
        summary["scores"] = {k: None if isinstance(v, float) and not np.isfinite(v) else v
                             for k, v in result.items() if k != "class_event_f1"}
    return summary


def timelines(scorer: Scorer, files: list[Path]) -> dict[str, Timeline]:
    return {t.path.name: t for t in scorer.timelines(files)}
