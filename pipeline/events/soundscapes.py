"""Soundscapes with known events, composed from real recordings, to measure detection (`cmkd soundscapes`).

From one ESC-50 fold (the fold a run held out, so the models never trained on these clips): each soundscape is a
minute of an ambient recording (the fold's clips of one of the ambient classes below, end to end with short
cross-fades) with events of the other classes laid over it at random onsets, one at a time (at least `gap` seconds
apart), each at a signal-to-noise ratio drawn from `snr_db` (the event's level while it sounds against the
ambience's). An event is the part of its clip that sounds: ESC-50 pads many clips with digital silence, and the
annotation spans from the first to the last 25 ms frame within 40 dB of the clip's loudest. The fold's clips are
split in two by take, each class's alternately, so the validation soundscapes (for thresholds) and the test ones
share no recording. Each soundscape also holds one quiet stretch (`quiet` seconds, drawn from 8 to 15 s): the
ambience faded 40 dB down over half a second, under a room tone (pink noise and a 50 Hz hum with its harmonics at
about -65 dB full scale), with no event in it: what a recorder hears between sounds at night. Everything is drawn
from `seed`: the same command makes the same files.

Written: <out>/{val,test}/scape_NNN.wav (16 kHz), <out>/{val,test}.tsv (filename, onset, offset, event_label: the
DCASE format), <out>/{val,test}_quiet.tsv (the quiet stretches, for `cmkd detect --quiet`) and
<out>/soundscapes.json (what was composed, from what).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from ..features.audio import load_audio

AMBIENT = ("rain", "sea_waves", "crackling_fire", "crickets", "wind", "engine", "train", "airplane", "helicopter")
RATE = 16000


def active_span(wave: np.ndarray, rate: int = RATE, floor_db: float = 40.0) -> tuple[int, int]:
    """[start, end) samples from the first to the last 25 ms frame within `floor_db` of the loudest."""
    size, shift = int(0.025 * rate), int(0.010 * rate)
    frames = np.lib.stride_tricks.sliding_window_view(wave, size)[::shift]
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level >= level.max() - floor_db)
    return int(loud[0] * shift), int(min(len(wave), loud[-1] * shift + size))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def clips_of_fold(root: Path, fold: int) -> dict[str, list[Path]]:
    """category -> the fold's clips, sorted by name."""
    by_class: dict[str, list[Path]] = {}
    with open(root / "meta" / "esc50.csv", newline="") as f:
        for row in csv.DictReader(f):
            if int(row["fold"]) == fold:
                by_class.setdefault(row["category"], []).append(root / "audio" / row["filename"])
    return {c: sorted(p) for c, p in sorted(by_class.items())}


def ambience(clips: list[Path], seconds: float, rng: np.random.Generator, fade: float = 0.05) -> np.ndarray:
    """`seconds` of one ambient class's recordings end to end (each the part that sounds), cross-faded."""
    n, out, at, k = int(seconds * RATE), np.zeros(int(seconds * RATE)), 0, int(fade * RATE)
    ramp = np.linspace(0, 1, k)
    while at < n:
        wave = load_audio(rng.choice(clips), RATE).numpy().astype(np.float64)
        start, end = active_span(wave)
        piece = wave[start:end] / rms(wave[start:end])
        piece[:k] *= ramp[: len(piece[:k])]
        piece[-k:] *= ramp[::-1][-len(piece[-k:]):]
        take = min(len(piece), n - at)
        out[at : at + take] += piece[:take]
        at += max(take - k, 1)
    return out


def room_tone(samples: int, rng: np.random.Generator, level_dbfs: float = -65.0) -> np.ndarray:
    """Pink noise with a 50 Hz hum and its harmonics, `level_dbfs` RMS: a quiet room's tone."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(samples, 1 / RATE), 20.0))  # 1/f power
    tone = np.fft.irfft(spectrum, samples)
    t = np.arange(samples) / RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    tone = tone / rms(tone) + 0.5 * hum / rms(hum)
    return tone / rms(tone) * 10 ** (level_dbfs / 20)


def quiet_stretch(audio: np.ndarray, seconds: float, rng: np.random.Generator, quiet: tuple[float, float] = (8, 15),
                  fade: float = 0.5) -> tuple[float, float]:
    """Fade `audio` 40 dB down over a stretch of `quiet` seconds (in place), under a room tone; the stretch."""
    length = rng.uniform(*quiet)
    onset = rng.uniform(0, seconds - length)
    a, b, k = int(onset * RATE), int((onset + length) * RATE), int(fade * RATE)
    gain = np.ones(len(audio))
    gain[a:b] = 10 ** (-40 / 20)
    ramp = np.linspace(1, 10 ** (-40 / 20), k)
    gain[max(0, a - k) : a] = ramp[k - (a - max(0, a - k)):]
    gain[b : b + k] = ramp[::-1][: len(gain[b : b + k])]
    audio *= gain
    audio[a:b] += room_tone(b - a, rng)
    return round(onset, 3), round(onset + length, 3)


def compose(clips: dict[str, list[Path]], count: int, rng: np.random.Generator, seconds: float = 60.0,
            per_minute: float = 6.0, snr_db: tuple[float, float] = (0.0, 12.0), gap: float = 1.0,
            background_level: float = 0.05) -> list[tuple[np.ndarray, list[tuple[float, float, str]], tuple]]:
    """`count` soundscapes: (audio, [(onset, offset, label)], (quiet onset, quiet offset))."""
    ambient = [c for c in AMBIENT if c in clips]
    events = [c for c in clips if c not in AMBIENT]
    made = []
    for _ in range(count):
        audio = background_level * ambience(clips[ambient[rng.integers(len(ambient))]], seconds, rng)
        quiet = quiet_stretch(audio, seconds, rng)
        wanted, placed, tries = rng.poisson(per_minute * seconds / 60), [], 0
        while len(placed) < wanted and tries < 200:
            tries += 1
            label = events[rng.integers(len(events))]
            wave = load_audio(rng.choice(clips[label]), RATE).numpy().astype(np.float64)
            start, end = active_span(wave)
            piece = wave[start:end]
            onset = rng.uniform(0, seconds - len(piece) / RATE)
            offset = onset + len(piece) / RATE
            if any(onset < b + gap and offset + gap > a for a, b, _ in [*placed, (*quiet, "")]):
                continue
            at = int(onset * RATE)
            local = audio[at : at + len(piece)]
            snr = rng.uniform(*snr_db)
            audio[at : at + len(piece)] += piece / rms(piece) * rms(local) * 10 ** (snr / 20)
            placed.append((round(onset, 3), round(offset, 3), label))
        peak = np.abs(audio).max()
        made.append(((audio * min(1.0, 0.9 / peak)).astype(np.float32), sorted(placed), quiet))
    return made


def write_soundscapes(root: Path, fold: int, out: Path, val: int = 15, test: int = 35, seconds: float = 60.0,
                      seed: int = 0) -> dict:
    """Compose and write the validation and test soundscapes; returns the description (soundscapes.json)."""
    root, out = Path(root), Path(out)
    clips = clips_of_fold(root, fold)
    halves = {"val": {c: p[0::2] for c, p in clips.items()}, "test": {c: p[1::2] for c, p in clips.items()}}
    rng = np.random.default_rng(seed)
    described = {"esc50": str(root), "fold": fold, "seed": seed, "seconds": seconds, "rate": RATE,
                 "ambient classes": [c for c in AMBIENT if c in clips],
                 "event classes": [c for c in clips if c not in AMBIENT], "splits": {}}
    for split, count in (("val", val), ("test", test)):
        (out / split).mkdir(parents=True, exist_ok=True)
        rows, quiet_rows = [], []
        for i, (audio, placed, quiet) in enumerate(compose(halves[split], count, rng, seconds)):
            name = f"scape_{i:03d}.wav"
            sf.write(out / split / name, audio, RATE, subtype="PCM_16")
            rows += [(name, onset, offset, label) for onset, offset, label in placed]
            quiet_rows.append((name, *quiet, "quiet"))
        for table, written in ((f"{split}.tsv", rows), (f"{split}_quiet.tsv", quiet_rows)):
            with open(out / table, "w", newline="") as f:
                writer = csv.writer(f, delimiter="\t")
                writer.writerow(["filename", "onset", "offset", "event_label"])
                writer.writerows(written)
        described["splits"][split] = {"soundscapes": count, "minutes": count * seconds / 60, "events": len(rows)}
    (out / "soundscapes.json").write_text(json.dumps(described, indent=1) + "\n")
    return described
