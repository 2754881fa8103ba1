"""`cmkd check`: every clip of the dataset params describe, decoded before anything is computed, every problem at
once, and what the window crops of them.

The dataset's source (pipeline/prepare) gives the manifest, which is validated as prepare validates it (labels,
splits, groups); then every clip is decoded by the features stage's own reader (pipeline/features/audio.py: the
same checks, so a clip that passes here passes there), in Dask worker processes. What a decoder prints on its own
(libsndfile's notes on MPEG data inside a WAV container, say) goes to the process's stderr with no file name; each
worker decodes one clip at a time with its stderr captured, so each note is attributed to its clip.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import dask

from ..manifest import Clip
from .audio import AudioError
from .extract import clip_audio, default_frontend
from .length import crop_report, resolved, seconds_of

CLIPS_PER_TASK = 32


@contextmanager
def captured_stderr():
    """What C libraries write to file descriptor 2 while the block runs, as a list of lines filled in at exit."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += [line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip()]


def probe(clips: list[Clip], frontend, target_frames: int) -> list[tuple[str, str, str]]:
    """One task: (path, "error" | "warning", what) for each problem of these clips."""
    found = []
    for clip in clips:
        try:
            with captured_stderr() as printed:
                clip_audio(clip.path, frontend, target_frames)
        except AudioError as e:
            found.append((str(clip.path), "error", str(e).removeprefix(f"{clip.path}: ")))
        found += [(str(clip.path), "warning", f"decoder: {line}") for line in printed]
    return found


def check_clips(clips: list[Clip], cfg, workers: int) -> list[tuple[str, str, str]]:
    """Every problem of every clip, decoded in `workers` processes (one clip at a time each, for captured stderr)."""
    frontend = default_frontend(cfg)
    tasks = [dask.delayed(probe)(clips[i : i + CLIPS_PER_TASK], frontend, cfg.target_frames,
                                 dask_key_name=f"check-{i:09d}")
             for i in range(0, len(clips), CLIPS_PER_TASK)]
    scheduler = "processes" if workers > 1 else "synchronous"
    return sorted(p for found in dask.compute(*tasks, scheduler=scheduler, num_workers=workers) for p in found)


def check_dataset(settings) -> tuple[list[Clip], list[tuple[str, str, str]], dict]:
    """The clips params describe (read and validated as the prepare stage does, in a scratch folder), their
    problems, and what the window (`features.target_frames`, `auto` resolved as the features stage resolves it)
    crops of them (length.py); a manifest that does not validate raises ManifestError."""
    from ..prepare import read_dataset

    with tempfile.TemporaryDirectory() as folder:
        clips, _ = read_dataset(settings.data, Path(folder))
        frontend = default_frontend(settings.features)
        seconds = seconds_of([clip.path for clip in clips], 4 * settings.features.workers)
        cfg = resolved(settings.features, seconds, frontend)
        report = crop_report(seconds, settings.features, cfg.target_frames, frontend)
        return clips, check_clips(clips, cfg, cfg.workers), report
