"""Detection scored with the field's own metrics (kept libraries, not hand-written), and thresholds picked on
validation recordings.

  event-based F1   sed_eval's EventBasedMetrics on the events `cmkd detect` writes: an estimated event matches a
                   reference event of its class whose onset is within `collar` seconds and whose offset is within
                   max(collar, half the reference's length); micro-averaged over events (and per class)
  segment-based F1 sed_eval's SegmentBasedMetrics: activity per class in 1 s segments
  PSDS             sed_scores_eval's polyphonic sound detection score on the (smoothed) score timelines, threshold-free:
                   scenario 1 (detection and ground-truth tolerance 0.7: localisation) and scenario 2 (0.1 and 0.1,
                   cross-trigger tolerance 0.3: which class, loosely when), as the DCASE 2021-2023 challenges
  quiet alarms     events per minute of known quiet stretches (`cmkd soundscapes` writes them), each stretch less a
                   collar at either end (its fade, and the tolerance the event metrics give): false alarms in silence
  onset error      the median |onset difference| of each reference event and the closest-starting estimated event of
                   its class that overlaps it (how well the detections that hit are placed)
`tune_thresholds` picks each class's threshold as the one of a grid that maximises that class's event-based F1 on
the validation recordings (events made as `cmkd detect` makes them); classes that never occur there keep `default`.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .segments import Event, Postprocessing, events, smoothed
from .timeline import Timeline

COLLAR = 1.0                  # seconds: the onset tolerance (DCASE's is 0.2 s; a window-long model cannot place so
GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)  # finely: docs/long-recordings.md)


def read_annotations(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """filename -> [(onset, offset, label)] from a DCASE table (filename, onset, offset, event_label)."""
    out: dict[str, list] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out.setdefault(row["filename"], []).append((float(row["onset"]), float(row["offset"]),
                                                        row["event_label"]))
    return out


def _container(rows: list[dict]):
    import dcase_util

    return dcase_util.containers.MetaDataContainer(rows)


def sed_eval_scores(found: dict[str, list[Event]], reference: dict[str, list], classes: list[str],
                    collar: float = COLLAR) -> dict:
    """Event- and segment-based precision, recall and F1 (overall, micro-averaged; per class F1)."""
    import sed_eval

    event = sed_eval.sound_event.EventBasedMetrics(event_label_list=classes, t_collar=collar,
                                                   percentage_of_length=0.5, evaluate_offset=True)
    segment = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=classes, time_resolution=1.0)
    files = {}
    for name in sorted(set(found) | set(reference)):
        ref = _container([{"filename": name, "onset": a, "offset": b, "event_label": c}
                          for a, b, c in reference.get(name, []) if c in classes])
        est = _container([{"filename": name, "onset": e.onset, "offset": e.offset, "event_label": e.label}
                          for e in found.get(name, []) if e.label in classes])
        before = dict(event.overall)
        event.evaluate(reference_event_list=ref, estimated_event_list=est)
        segment.evaluate(reference_event_list=ref, estimated_event_list=est)
        files[name] = {k: int(event.overall[k] - before[k]) for k in ("Nref", "Nsys", "Ntp")}
    overall = {kind: m.results_overall_metrics()["f_measure"] for kind, m in (("event", event), ("segment", segment))}
    per_class = event.results_class_wise_metrics()

    def f1(value):  # sed_eval leaves F1 undefined (NaN) when nothing was detected: recall 0, so F1 0
        return 0.0 if value is None or not np.isfinite(value) else float(value)
    return {"event_f1": f1(overall["event"]["f_measure"]), "event_precision": overall["event"]["precision"],
            "event_recall": overall["event"]["recall"], "segment_f1": f1(overall["segment"]["f_measure"]),
            "class_event_f1": {c: f1(per_class[c]["f_measure"]["f_measure"]) for c in classes},
            "file_counts": files}


def quiet_alarms(found: dict[str, list[Event]], quiet: dict[str, list], collar: float = COLLAR) -> dict:
    """Events overlapping the quiet stretches (each less `collar` at both ends), per minute of them."""
    quiet = {name: [(a + collar, b - collar) for a, b, _ in rows if b - a > 2 * collar] for name, rows in quiet.items()}
    minutes = sum(b - a for rows in quiet.values() for a, b in rows) / 60
    count = sum(1 for name, rows in quiet.items() for e in found.get(name, [])
                if any(e.onset < b and e.offset > a for a, b in rows))
    return {"quiet_minutes": round(minutes, 3), "quiet_events": count,
            "quiet_alarms_per_minute": count / minutes if minutes else float("nan")}


def onset_error(found: dict[str, list[Event]], reference: dict[str, list], classes: list[str]) -> dict:
    """The median and 90th percentile of |onset error| over the reference events that an event of their class
    overlaps (the closest-starting such event)."""
    errors = []
    for name, rows in reference.items():
        for a, b, c in rows:
            hits = [abs(e.onset - a) for e in found.get(name, []) if e.label == c and e.onset < b and e.offset > a]
            if c in classes and hits:
                errors.append(min(hits))
    return {"onset_error_median": float(np.median(errors)) if errors else float("nan"),
            "onset_error_p90": float(np.percentile(errors, 90)) if errors else float("nan"),
            "onset_error_events": len(errors)}


def paired_difference(a: dict, b: dict, resamples: int = 2000, seed: int = 0) -> dict:
    """Event-based F1 of detections a minus b (two scores.json's `file_counts` on the same recordings), with a 95 %
    percentile interval from resampling the recordings (the same draw for both): F1 = 2 TP / (N_ref + N_sys)."""
    names = sorted(a)
    if sorted(b) != names:
        raise ValueError("the two detections were scored on different recordings")
    counts = np.array([[[a[n][k], b[n][k]] for k in ("Nref", "Nsys", "Ntp")] for n in names], dtype=float)

    def f1(c):  # c: [..., 3 (Nref, Nsys, Ntp), 2 (a, b)]
        return np.divide(2 * c[..., 2, :], c[..., 0, :] + c[..., 1, :], out=np.zeros(c[..., 0, :].shape),
                         where=(c[..., 0, :] + c[..., 1, :]) > 0)
    observed = f1(counts.sum(axis=0))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=resamples).astype(float)
    scores = f1(np.einsum("rn,nkm->rkm", draws, counts))
    low, high = np.percentile(scores[:, 0] - scores[:, 1], [2.5, 97.5])
    return {"a": float(observed[0]), "b": float(observed[1]), "difference": float(observed[0] - observed[1]),
            "ci95_low": float(low), "ci95_high": float(high), "recordings": len(names), "resamples": resamples}


def psds(timelines: dict[str, Timeline], reference: dict[str, list], classes: list[str], smooth: float) -> dict:
    """PSDS scenarios 1 and 2 (sed_scores_eval) of the smoothed score timelines, over those of `classes` the
    reference has events of (PSDS averages per-class ROCs: a class without events has none)."""
    from sed_scores_eval import intersection_based
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    occurring = {c for name in timelines for _, _, c in reference.get(name, [])}  # the recordings scored
    classes = [c for c in classes if c in occurring]
    scores, durations = {}, {}
    for name, t in timelines.items():
        keep = [t.classes.index(c) for c in classes]
        stamps = np.r_[t.times, min(len(t.scores) * t.step, max(t.duration, t.times[-1] + 1e-3))]
        scores[name] = create_score_dataframe(smoothed(t, smooth)[:, keep], stamps, classes)
        durations[name] = t.duration
    truth = {name: [(a, b, c) for a, b, c in reference.get(name, []) if c in classes] for name in timelines}
    out = {}
    cross = dict(cttc_threshold=0.3, alpha_ct=0.5) if len(classes) > 1 else {}  # cross-triggers need two classes
    for scenario, args in (("psds1", dict(dtc_threshold=0.7, gtc_threshold=0.7, alpha_st=1.0)),
                           ("psds2", dict(dtc_threshold=0.1, gtc_threshold=0.1, alpha_st=1.0, **cross))):
        value, *_ = intersection_based.psds(scores, truth, durations, max_efpr=100.0, **args)
        out[scenario] = float(value)
    out["psds_classes"] = len(classes)
    return out


def tune_thresholds(timelines: dict[str, Timeline], reference: dict[str, list], post: Postprocessing,
                    default: float = 0.5) -> dict[str, float]:
    """Per class, the grid threshold with the best event-based F1 on these (validation) recordings. A class that
    never occurs there, or whose F1 is 0 at every threshold, keeps `default`: the lowest threshold would win that
    tie and fire on everything."""
    classes = next(iter(timelines.values())).classes
    present = sorted({c for rows in reference.values() for _, _, c in rows})
    best = {c: (0.0, default) for c in classes}
    for threshold in GRID:
        found = {name: events(t, np.full(len(classes), threshold), post) for name, t in timelines.items()}
        scored = sed_eval_scores(found, reference, present)["class_event_f1"]
        for c in present:
            if scored[c] > best[c][0]:
                best[c] = (scored[c], float(threshold))
    return {c: best[c][1] for c in classes}
