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


def _sinc_kernels(orig: int, new: int, width: int, rolloff: float) -> tuple[torch.Tensor, int, int, int]:
    """(kernels [new phases, taps], reduced orig, reduced new, reach in input samples) of the resampler below."""
    step = math.gcd(orig, new)
    orig, new = orig // step, new // step
    cutoff = min(orig, new) * rolloff
    reach = math.ceil(width * orig / cutoff)
    taps = torch.arange(-reach, reach + orig, dtype=torch.float64)[None, :] / orig
    t = (-torch.arange(new, dtype=torch.float64)[:, None] / new + taps) * cutoff
    t = t.clamp(-width, width)
    window = torch.cos(t * math.pi / width / 2) ** 2
    t = t * math.pi
    kernels = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (cutoff / orig)
    return kernels, orig, new, reach


def resample(wave: torch.Tensor, orig: int, new: int, width: int = 6, rolloff: float = 0.99) -> torch.Tensor:
    """Band-limited resampling of a 1-D waveform from `orig` to `new` Hz: windowed-sinc interpolation (a Hann window
    over `width` zero crossings of a low-pass at `rolloff` x the lower Nyquist), one polyphase filter bank for the
    reduced ratio, as torchaudio's `functional.resample` defaults compute it (tests/test_batched_fbank.py compares
    them)."""
    if orig == new:
        return wave
    kernels, orig_r, new_r, reach = _sinc_kernels(orig, new, width, rolloff)
    x = torch.nn.functional.pad(wave.to(torch.float64)[None, None], (reach, reach + orig_r))
    out = torch.nn.functional.conv1d(x, kernels[:, None], stride=orig_r)  # [1, new phases, steps]
    out = out[0].T.reshape(-1)[: math.ceil(new_r * len(wave) / orig_r)]
    return out.to(wave.dtype)


def stream_audio(path: Path, sample_rate: int, chunk_seconds: float = 30.0):
    """A file's waveform at `sample_rate` in consecutive chunks (1-D float32 tensors), channels averaged and
    resampled as `load_audio` does, the whole file never in memory: equal, joined, to `resample` of the whole file."""
    with sf.SoundFile(path) as f:
        rate = f.samplerate
        if rate == sample_rate:
            while len(data := f.read(int(chunk_seconds * rate), dtype="float32", always_2d=True)):
                yield torch.from_numpy(data.mean(axis=1))
            return
        kernels, orig, new, reach = _sinc_kernels(rate, sample_rate, 6, 0.99)
        step = max(1, int(chunk_seconds * rate) // orig) * orig  # input samples per chunk: whole filter periods
        history = np.zeros(reach)                                # the input before the chunk (zeros at the start)
        pending = np.zeros(0)                                    # input read, not yet resampled
        produced, total = 0, math.ceil(new * f.frames / orig)
        while True:
            data = f.read(step, dtype="float32", always_2d=True)
            ended = len(data) < step
            pending = np.concatenate([pending, data.mean(axis=1).astype(np.float64)])
            ready = len(pending) if ended else max(0, (len(pending) - reach - orig) // orig * orig)
            if ready:
                context = np.concatenate([history, pending[:ready],
                                          pending[ready : ready + reach + orig] if not ended else np.zeros(0)])
                x = torch.nn.functional.pad(torch.from_numpy(context)[None, None],
                                            (0, max(0, len(history) + ready + reach + orig - len(context))))
                out = torch.nn.functional.conv1d(x, kernels[:, None], stride=orig)[0].T.reshape(-1)
                out = out[: min(new * ready // orig if not ended else total - produced, total - produced)]
                produced += len(out)
                yield out.to(torch.float32)
                history = np.concatenate([history, pending[:ready]])[-reach:]
                pending = pending[ready:]
            if ended:
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
