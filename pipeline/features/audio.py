"""Decoding a clip to a 16 kHz (or any target rate) mono float waveform, with errors that name the file.

Every problem a clip can have ends in an AudioError saying which file and what is wrong: missing, not audio,
truncated, empty, silent, NaN samples, or shorter than one analysis frame. Stereo and any sample rate are not
problems: channels are averaged and the clip resampled. A long clip is decoded only as far as the features need.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..errors import InputError


class AudioError(InputError, ValueError):
    pass


def load_audio(path: Path, sample_rate: int, max_seconds: float | None = None,
               min_samples: int = 0) -> torch.Tensor:
    """Return a 1-D float32 waveform at `sample_rate`: channels averaged, resampled (`resample`) if needed.

    max_seconds: decode at most this much from the start (the rest would be cropped anyway).
    min_samples: refuse clips shorter than this at `sample_rate` (one fbank frame: 400 samples at 16 kHz).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        with sf.SoundFile(path) as f:
            sr = f.samplerate
            frames = -1 if max_seconds is None else min(f.frames, math.ceil(max_seconds * sr))
            data = f.read(frames, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises its own error types for non-audio and truncated files
        raise AudioError(f"{path}: cannot decode audio ({e})") from e
    if path.suffix.lower() == ".wav":
        _check_wav_complete(path)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if not data.any():
        raise AudioError(f"{path}: silent (every sample is 0)")
    wave = torch.from_numpy(data.mean(axis=1))
    if sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
    if len(wave) < min_samples:
        raise AudioError(f"{path}: too short ({len(wave)} samples at {sample_rate} Hz, one frame needs {min_samples})")
    return wave


QUALITY = "HQ"  # soxr's high quality, what `sox -r 16000` (the AST recipe's resampling) uses by default


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """A 1-D waveform from `orig` to `new` Hz with the SoX resampler (soxr, HQ: linear phase, passband to 91 % of
    the lower Nyquist, 125 dB stop band), any ratio, in memory proportional to the clip (its filter does not grow
    with how little the two rates share: 16393 -> 16000 Hz costs what 44100 -> 16000 does). Checked against
    torchaudio's resampler in the band both keep (tests/test_batched_fbank.py)."""
    if orig == new:
        return wave
    import soxr

    out = soxr.resample(wave.numpy().astype(np.float32, copy=False), orig, new, quality=QUALITY)
    return torch.from_numpy(np.ascontiguousarray(out)).to(wave.dtype)


def stream_audio(path: Path, sample_rate: int, chunk_seconds: float = 30.0):
    """A file's waveform at `sample_rate` in consecutive chunks (1-D float32 tensors), channels averaged and
    resampled as `load_audio` does, the whole file never in memory: joined, exactly `resample` of the whole file
    (soxr's stream and its one-shot call are the same filter)."""
    import soxr

    with sf.SoundFile(path) as f:
        rate = f.samplerate
        stream = None if rate == sample_rate else soxr.ResampleStream(rate, sample_rate, 1, dtype="float32",
                                                                      quality=QUALITY)
        step = max(1, int(chunk_seconds * rate))
        while True:
            data = f.read(step, dtype="float32", always_2d=True)
            last = len(data) < step
            mono = np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))
            out = mono if stream is None else stream.resample_chunk(mono, last=last)
            if len(out):
                yield torch.from_numpy(np.ascontiguousarray(out))
            if last:
                return


def _check_wav_complete(path: Path) -> None:
    """libsndfile silently reads a cut-off WAV as a shorter clip; compare the header's data size with the file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            return  # not a RIFF/WAVE file (libsndfile decoded it, so it is some other valid format)
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                available = size - f.tell()
                if length != 0xFFFFFFFF and length > available:  # RF64 keeps the real size elsewhere
                    raise AudioError(f"{path}: truncated (the header declares {length} bytes of samples, "
                                     f"the file holds {available})")
                return
            f.seek(length + (length & 1), 1)
