"""Where a recording sounds above its own background: the level gate that keeps silence free of events.

A single-label model has no "nothing" class: over silence or a steady hum its softmax still names a winner, and
averaged windows can raise that winner over any threshold. The gate asks the recording itself. Its power is measured
in 20 ms blocks as the audio streams past. A step's level is its blocks' mean power (dB full scale); the background
is a running low percentile of the recording's one-second levels (`FLOOR_PERCENTILE` of the seconds within
`FLOOR_SECONDS` around): what the recording sinks to between sounds. Both are means over many blocks, so a noise's
own flicker (a pink room tone's 20 ms blocks swing by several dB) stays well under the margin, while a 20 ms click
30 dB over the background still lifts a 0.3 s step by some 18 dB. A step is active when its level rises `margin_db`
over the background and over `SILENCE_DBFS` (digital silence and dither are never active); an inactive step scores
0 for every class, so it can give no event, and PSDS sees the same gated scores.

What it cannot do: tell a sound from loud background. A stationary noise, a room tone or a steady engine is its own
background and stays inactive; a sound that goes on through most of `FLOOR_SECONDS` becomes the background too. Wind
gusts or rain above a quiet night pass the gate, and it is the class thresholds (picked on validation recordings
with such stretches) that must keep them quiet (docs/long-recordings.md).

Memory: one float per 20 ms (an hour: 180,000).
"""
from __future__ import annotations

import numpy as np

BLOCK_SECONDS = 0.02
FLOOR_PERCENTILE = 10
FLOOR_SECONDS = 60.0
SILENCE_DBFS = -80.0
MARGIN_DB = 3.0  # chosen on the validation soundscapes (docs/measurements.md "Detection in silence")


def margin_option(text: str) -> float | None:
    """`cmkd detect --gate`: "default" (MARGIN_DB), "off" (None: no gate) or a margin in dB."""
    if text in ("default", "off"):
        return MARGIN_DB if text == "default" else None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"a number of dB, default or off, got {text!r}") from None


class Levels:
    """The block levels of a stream of audio chunks, in order."""

    def __init__(self, rate: int):
        self.block = max(1, round(rate * BLOCK_SECONDS))
        self.rate, self.carry, self.parts = rate, np.zeros(0), []

    def add(self, chunk) -> None:
        audio = np.concatenate([self.carry, np.asarray(chunk, dtype=np.float64)])
        whole = len(audio) // self.block * self.block
        if whole:
            power = np.mean(audio[:whole].reshape(-1, self.block) ** 2, axis=1)
            self.parts.append(10 * np.log10(power + 1e-12))
        self.carry = audio[whole:]

    def db(self) -> np.ndarray:
        """[blocks] dB full scale; the last partial block counts as a block."""
        tail = [10 * np.log10(np.mean(self.carry ** 2) + 1e-12)] if len(self.carry) else []
        return np.concatenate(self.parts + [np.array(tail)]) if self.parts or tail else np.zeros(0)


def _mean_db(power_db: np.ndarray, size: int) -> np.ndarray:
    """The mean power (dB) of consecutive groups of `size` blocks (the last group may be shorter)."""
    power = 10 ** (power_db / 10)
    groups = -(-len(power) // size)
    padded = np.full(groups * size, np.nan)
    padded[: len(power)] = power
    return 10 * np.log10(np.nanmean(padded.reshape(groups, size), axis=1) + 1e-12)


def background(levels: np.ndarray) -> np.ndarray:
    """[seconds] the background level around each second of the recording (see the module docstring)."""
    from scipy.ndimage import percentile_filter

    seconds = _mean_db(levels, max(1, round(1 / BLOCK_SECONDS)))
    width = min(len(seconds), int(FLOOR_SECONDS)) // 2 * 2 + 1
    return percentile_filter(seconds, FLOOR_PERCENTILE, size=width, mode="nearest")


def step_activity(levels: np.ndarray, step_seconds: float, steps: int) -> np.ndarray:
    """[steps] dB: each step's level over the background around it (-inf where digital silence or no audio)."""
    out = np.full(steps, -np.inf)
    if not len(levels):
        return out
    owner = np.minimum((np.arange(len(levels)) * BLOCK_SECONDS / step_seconds).astype(int), steps - 1)
    power = np.zeros(steps)
    np.add.at(power, owner, 10 ** (levels / 10))
    count = np.bincount(owner, minlength=steps)
    heard = count > 0
    level = np.full(steps, -np.inf)
    level[heard] = 10 * np.log10(power[heard] / count[heard] + 1e-12)
    floor = background(levels)
    middle = np.minimum(((np.arange(steps) + 0.5) * step_seconds).astype(int), len(floor) - 1)
    active = heard & (level > SILENCE_DBFS)
    out[active] = level[active] - floor[middle[active]]
    return out
