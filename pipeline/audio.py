"""Decoding a clip to a 16 kHz (or any target rate) mono float waveform, with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio


class AudioError(ValueError):
    pass


def load_audio(path: Path, sample_rate: int) -> torch.Tensor:
    """Return a 1-D float32 waveform at `sample_rate`: channels averaged, resampled with torchaudio if needed."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises its own error types for non-audio and truncated files
        raise AudioError(f"{path}: cannot decode audio ({e})") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    wave = torch.from_numpy(data.mean(axis=1))
    if sr != sample_rate:
        wave = torchaudio.functional.resample(wave, sr, sample_rate)
    return wave
