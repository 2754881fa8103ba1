"""Where a recording sounds above its own background: the level gate that keeps silence free of events.

A single-label model has no "nothing" class: over silence or a steady hum its softmax still names a winner, and
averaged windows can raise that winner over any threshold. The gate asks the recording itself. Its level is measured
in 20 ms blocks (RMS, dB full scale) as the audio streams past; the background is a running low percentile of those
levels (`FLOOR_PERCENTILE` of each second's blocks, then of the seconds within `FLOOR_SECONDS` around): what the
recording sinks to between sounds. A timeline step is active when one of its blocks rises `margin_db` over that
background and over `SILENCE_DBFS` (digital silence and dither are never active); an inactive step scores 0 for
every class, so it can give no event, and PSDS sees the same gated scores.

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
MARGIN_DB = 10.0  # chosen on the validation soundscapes (docs/measurements.md "Detection in silence")


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


def background(levels: np.ndarray) -> np.ndarray:
    """[blocks] the background level around each block (see the module docstring)."""
    from scipy.ndimage import percentile_filter

    per_second = max(1, round(1 / BLOCK_SECONDS))
    seconds = -(-len(levels) // per_second)
    padded = np.full(seconds * per_second, np.nan)
    padded[: len(levels)] = levels
    second_floor = np.nanpercentile(padded.reshape(seconds, per_second), FLOOR_PERCENTILE, axis=1)
    width = min(seconds, int(FLOOR_SECONDS)) // 2 * 2 + 1
    floor = percentile_filter(second_floor, FLOOR_PERCENTILE, size=width, mode="nearest")
    return np.repeat(floor, per_second)[: len(levels)]


def step_activity(levels: np.ndarray, step_seconds: float, steps: int) -> np.ndarray:
    """[steps] dB: each step's loudest block over the background (-inf where digital silence)."""
    if not len(levels):
        return np.full(steps, -np.inf)
    over = np.where(levels > SILENCE_DBFS, levels - background(levels), -np.inf)
    owner = np.minimum((np.arange(len(levels)) * BLOCK_SECONDS / step_seconds).astype(int), steps - 1)
    out = np.full(steps, -np.inf)
    np.maximum.at(out, owner, over)
    return out
