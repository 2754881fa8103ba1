"""The reference the fbank is checked against: torchaudio's Kaldi fbank (a test extra, pinned in constraints.txt),
or, where torchaudio does not import, the values it gave, stored in tests/data/kaldi_reference.npz.

`python -m tests.kaldi_reference` (with torchaudio installed) writes that file again: the first 40 frames of
torchaudio's fbank of each synthetic clip below and its mel banks for the recipe's settings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

STORED = Path(__file__).resolve().parent / "data" / "kaldi_reference.npz"
FRAMES = 40
MEL_SETTINGS = [(128, 512, 16000.0), (64, 256, 8000.0)]


def synthetic_waves() -> list[torch.Tensor]:
    """Clips of odd lengths with a DC offset, quiet passages and digital silence: the hard cases for a float32 log."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(32000) / 16000
    return [
        0.3 + 0.1 * torch.randn(16000, generator=g),                     # 1 s of noise over a DC offset
        0.5 * torch.sin(2 * torch.pi * 440 * t) * (t < 1.2),             # a tone, then digital silence
        1e-4 * torch.randn(12345, generator=g),                          # very quiet, odd length
        torch.zeros(8000),                                               # silence
        0.2 * torch.randn(400, generator=g),                             # exactly one frame
        torch.cat([torch.randn(5000, generator=g), torch.zeros(30000)]),  # noise then a long silent tail
    ]


def torchaudio_fbank(wave: torch.Tensor) -> torch.Tensor:
    import torchaudio

    return torchaudio.compliance.kaldi.fbank(
        (wave - wave.mean()).unsqueeze(0), htk_compat=True, sample_frequency=16000, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10, frame_length=25)


def from_torchaudio() -> dict:
    from torchaudio.compliance.kaldi import get_mel_banks

    out = {f"fbank{i}": torchaudio_fbank(w)[:FRAMES].numpy() for i, w in enumerate(synthetic_waves())}
    out["frames"] = np.array([torchaudio_fbank(w).shape[0] for w in synthetic_waves()])
    for bins, n_fft, rate in MEL_SETTINGS:
        bank, _ = get_mel_banks(bins, n_fft, rate, 20.0, 0.0, 100.0, -500.0, 1.0)
        out[f"mel{bins}_{n_fft}_{int(rate)}"] = torch.nn.functional.pad(bank, (0, 1)).T.contiguous().numpy()
    return out


def reference() -> dict:
    """torchaudio's values: computed now where torchaudio imports, else the stored ones."""
    try:
        return from_torchaudio()
    except ImportError:
        with np.load(STORED) as f:
            return {k: f[k] for k in f.files}


if __name__ == "__main__":
    np.savez_compressed(STORED, **from_torchaudio())
    print(f"wrote {STORED}")
