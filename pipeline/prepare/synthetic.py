"""The built-in dataset: sound events of distinct kinds over background noise, generated from a seed.

A class is an event kind in a frequency band (e.g. `chirp_up/low`). Each event has a random onset, duration,
pitch within its band and level (SNR over the background), so a model must learn spectro-temporal shape and
pitch range, not a fixed template. Single-label clips hold one event; multi-label clips hold 1..max_events
events of distinct classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from rich.progress import track

from ..manifest import SPLITS
from . import source

KINDS = ("tone", "chirp_up", "chirp_down", "noise_burst", "click_train", "harmonic_stack", "am_tone", "fm_tone")
BANDS = {"low": (150.0, 600.0), "mid": (700.0, 2200.0), "high": (2800.0, 6000.0)}


def class_names(num_classes: int) -> list[str]:
    names = [f"{kind}/{band}" for band in BANDS for kind in KINDS]
    if not 1 <= num_classes <= len(names):
        raise ValueError(f"data.num_classes must be in 1..{len(names)}, got {num_classes}")
    return names[:num_classes]


def _event(kind: str, f0: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    d = n / sr
    if kind == "tone":
        x = np.sin(2 * np.pi * f0 * t)
    elif kind in ("chirp_up", "chirp_down"):
        ratio = 2.5 if kind == "chirp_up" else 1 / 2.5
        x = np.sin(2 * np.pi * f0 * d * (ratio ** (t / d) - 1) / np.log(ratio))  # exponential sweep
    elif kind == "noise_burst":
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sr)
        spec[(freqs < f0 / 1.5) | (freqs > f0 * 1.5)] = 0
        x = np.fft.irfft(spec, n)
    elif kind == "click_train":
        x = np.zeros(n)
        rate = rng.uniform(8, 25)
        click = np.sin(2 * np.pi * f0 * t[: int(0.006 * sr)]) * np.exp(-t[: int(0.006 * sr)] / 0.0015)
        for start in (np.arange(0, d, 1 / rate) * sr).astype(int):
            seg = x[start : start + len(click)]
            seg += click[: len(seg)]
    elif kind == "harmonic_stack":
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    elif kind == "am_tone":
        x = np.sin(2 * np.pi * f0 * t) * (1 + 0.95 * np.sin(2 * np.pi * rng.uniform(4, 12) * t)) / 2
    elif kind == "fm_tone":
        m = rng.uniform(4, 9)
        x = np.sin(2 * np.pi * f0 * t + 0.06 * f0 / m * np.sin(2 * np.pi * m * t))  # +-6 % vibrato
    else:
        raise ValueError(kind)
    ramp = min(n // 2, int(0.01 * sr))  # 10 ms raised-cosine fades avoid onset clicks
    fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    x[:ramp] *= fade
    x[n - ramp :] *= fade[::-1]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.sqrt(np.arange(1, len(spec)))  # pink-ish
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def synthesize_clip(class_ids: list[int], classes: list[str], cfg, rng: np.random.Generator) -> np.ndarray:
    sr = cfg.sample_rate
    n = int(round(cfg.clip_seconds * sr))
    noise_rms = 0.02 * 2 ** rng.uniform(-1, 1)
    clip = noise_rms * _background(n, rng)
    for c in class_ids:
        kind, band = classes[c].split("/")
        lo, hi = BANDS[band]
        f0 = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        length = int(min(n, rng.uniform(0.3, 1.2) * sr))
        onset = int(rng.integers(0, n - length + 1))
        level = noise_rms * 10 ** (rng.uniform(*cfg.snr_db) / 20)
        clip[onset : onset + length] += level * _event(kind, f0, length, sr, rng)
    peak = np.abs(clip).max()
    return (clip * min(1.0, 0.95 / peak)).astype(np.float32)


def _assign_splits(num_clips: int, cfg, rng: np.random.Generator) -> list[str]:
    order = rng.permutation(num_clips)
    n_test = int(round(cfg.split.test * num_clips))
    n_val = int(round(cfg.split.val * num_clips))
    split = np.empty(num_clips, dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    split[order[n_test + n_val :]] = "train"
    return list(split)


@source("builtin")
def read(data, folder: Path) -> tuple[list[dict], list[str]]:
    return write_dataset(data, folder)


def write_dataset(cfg, out_dir: Path) -> tuple[list[dict], list[str]]:
    """Write out_dir/audio/*.wav from cfg.seed; returns the manifest rows (paths relative to out_dir) and classes."""
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    classes = class_names(cfg.num_classes)
    num_classes, per_class = len(classes), cfg.clips_per_class

    if cfg.multi_label:
        num_clips = num_classes * per_class
        clip_classes = [
            sorted(rng.choice(num_classes, size=rng.integers(1, cfg.max_events + 1), replace=False).tolist())
            for _ in range(num_clips)
        ]
        splits = _assign_splits(num_clips, cfg, rng)
    else:  # stratified: every class has the same share of each split
        clip_classes, splits = [], []
        for c in range(num_classes):
            clip_classes += [[c]] * per_class
            splits += _assign_splits(per_class, cfg, rng)
    assert set(splits) <= set(SPLITS)

    rows = []
    for i, (ids, split) in enumerate(track(list(zip(clip_classes, splits)), description="synthesizing clips")):
        clip_id = f"clip{i:05d}"
        audio = synthesize_clip(ids, classes, cfg, rng)
        sf.write(out_dir / "audio" / f"{clip_id}.wav", audio, cfg.sample_rate, subtype="PCM_16")
        rows.append({"clip_id": clip_id, "path": f"audio/{clip_id}.wav", "labels": [classes[c] for c in ids],
                     "split": split})
    return rows, classes
