"""How long a model's input window is, and what it leaves out.

`features.target_frames` is a number of 10 ms frames, or `auto`: sized from the clips' own durations (read from
their headers, no decoding), as the frames of the 95th percentile clip, capped at 1024 (10.24 s, AudioSet's window),
at least 16 (the AST's patch). So at most one clip in twenty is cropped, by however little its tail is longer, and
short-clip data (spoken digits) is not padded to a length made for 5 s clips, nor 5 s clips cropped to one.

Whatever the length, the features stage and `cmkd check` say what it crops: how many clips are longer than the
window, and the median of what they lose (a crop drops the end of a clip, silently for the model), and the store
records it (its attrs `input_length`, shown by `cmkd inspect`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

AUTO_PERCENTILE = 95
MAX_FRAMES = 1024
MIN_FRAMES = 16
WARN_SHARE = 0.05  # a window that crops more clips than `auto` would is said to, with what it costs


def seconds_of(paths: list, workers: int = 8) -> np.ndarray:
    """Each file's duration in seconds from its header (NaN where it cannot be read: the features stage then names
    the file and its problem)."""
    def duration(path) -> float:
        if not Path(path).is_file():  # missing, or a pipe or device whose header would block: decoding says
            return float("nan")
        try:
            return float(sf.info(str(path)).duration)
        except Exception:  # noqa: BLE001  (unreadable: decoding reports it with the reason)
            return float("nan")

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return np.array(list(pool.map(duration, paths, chunksize=256)), dtype=np.float64)


def frames_of(seconds: float, frontend) -> int:
    """The frames the front-end (pipeline/features/frontend.py) makes of audio lasting `seconds`."""
    return frontend.frames_of(int(np.floor(seconds * frontend.sample_rate + 1e-6)))


def auto_frames(seconds: np.ndarray, frontend) -> int:
    """`target_frames: auto`: the frames of the 95th percentile clip, within [16, 1024]."""
    known = seconds[np.isfinite(seconds)]
    if not len(known):
        return MIN_FRAMES
    frames = frames_of(float(np.percentile(known, AUTO_PERCENTILE, method="higher")), frontend)
    return int(min(MAX_FRAMES, max(MIN_FRAMES, frames)))


def resolved(cfg, seconds: np.ndarray, frontend):
    """The features settings with `target_frames` a number (`auto` sized from `seconds`)."""
    if cfg.target_frames != "auto":
        return cfg
    return cfg.model_copy(update={"target_frames": auto_frames(seconds, frontend)})


def crop_report(seconds: np.ndarray, cfg, frames: int, frontend) -> dict:
    """What a window of `frames` frames crops of clips lasting `seconds`: how many clips, the median seconds and
    share of a cropped clip lost, and the share of all the audio lost. `cfg`: the features settings as given (before
    `resolved`), whose target_frames says by which rule the window was sized."""
    known = seconds[np.isfinite(seconds)]
    window = frontend.samples_for(frames) / frontend.sample_rate
    lost = np.clip(known - window, 0, None)
    cropped = lost > frontend.hop_ms / 1000  # more than a frame's worth
    return {"target_frames": int(frames), "window_seconds": round(window, 3),
            "rule": (f"auto: the {AUTO_PERCENTILE}th percentile clip's frames, within [{MIN_FRAMES}, {MAX_FRAMES}]"
                     if cfg.target_frames == "auto" else "features.target_frames"),
            "clip_seconds": {q: round(float(np.percentile(known, p)), 3) for q, p in
                             (("p5", 5), ("median", 50), ("p95", 95), ("max", 100))} if len(known) else {},
            "clips": int(len(known)), "cropped": int(cropped.sum()),
            "cropped_share": round(float(cropped.mean()), 4) if len(known) else 0.0,
            "median_lost_seconds": round(float(np.median(lost[cropped])), 3) if cropped.any() else 0.0,
            "median_lost_share": round(float(np.median(lost[cropped] / known[cropped])), 4) if cropped.any() else 0.0,
            "audio_lost_share": round(float(lost.sum() / known.sum()), 4) if known.sum() else 0.0}


def crop_warning(report: dict) -> str | None:
    """A sentence for the user when the window crops more than one clip in twenty, else None."""
    if report["cropped_share"] <= WARN_SHARE:
        return None
    return (f"features.target_frames = {report['target_frames']} ({report['window_seconds']:g} s) crops "
            f"{report['cropped']} of {report['clips']} clips ({report['cropped_share']:.0%}): a cropped clip loses "
            f"a median {report['median_lost_seconds']:g} s ({report['median_lost_share']:.0%} of it), "
            f"{report['audio_lost_share']:.0%} of all the audio; the clips last {report['clip_seconds']['median']:g} s "
            f"(median), {report['clip_seconds']['p95']:g} s (95th percentile). features.target_frames: auto sizes "
            "the window from them")
