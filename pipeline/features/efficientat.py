"""EfficientAT's front-end (and PaSST's, by the same authors): a 32 kHz log mel spectrogram, as its MobileNets were
trained on AudioSet (EfficientAT's `AugmentMelSTFT` in evaluation mode, no augmentation):

  pre-emphasis y[n] = x[n + 1] - 0.97 x[n]; a centred STFT (the signal reflected by half an FFT at both ends), a
  1024-point FFT of 800-sample symmetric Hann windows every 320 samples (25 ms every 10 ms); power; Kaldi's mel
  banks (128, 0 Hz to 15 kHz: its default fmax, 16 kHz less half its 2 kHz augmentation range); log(mel + 1e-5).

Its models take (log mel + 4.5) / 5, that is the normalisation (x - mean) / (2 std) with mean -4.5, std 2.5, which a
converted checkpoint records. A clip shorter than the window is padded with silence before the transform, as
EfficientAT pads its clips' audio; every frame depends on its own samples only, so a window of a long file holds
the frames of the file. Written from the description above and checked against EfficientAT's code
(tests/test_efficientat.py), of which no line is copied here.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .fbank import mel_banks, symmetric_hann
from .frontend import FrontEnd


class MelSTFT(nn.Module):
    """Audio [batch, samples] -> log mel [batch, frames, bins] (every clip the batch's length)."""

    def __init__(self, sample_rate: int, bins: int, window: int, hop: int, n_fft: int, fmin: float, fmax: float,
                 dtype: torch.dtype = torch.float32, target_frames: int | None = None):
        super().__init__()
        self.hop, self.n_fft, self.dtype, self.target_frames = hop, n_fft, dtype, target_frames
        hann = symmetric_hann(window)
        left = (n_fft - window) // 2  # the window centred in the FFT's frame, as torch.stft places it
        padded = torch.zeros(n_fft, dtype=torch.float64)
        padded[left : left + window] = hann
        self.register_buffer("window", padded.to(dtype), persistent=False)
        self.register_buffer("mel", mel_banks(bins, n_fft, sample_rate, fmin, fmax).to(dtype), persistent=False)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        x = waves.to(self.dtype)
        if self.target_frames is not None:  # silence to the window's samples, or the window's start
            needed = (self.target_frames - 1) * self.hop + 2
            x = torch.cat([x, x.new_zeros(x.shape[0], needed)], dim=1)[:, :needed]
        x = x[:, 1:] - 0.97 * x[:, :-1]
        half = self.n_fft // 2
        x = nn.functional.pad(x[:, None], (half, half), mode="reflect")[:, 0]
        frames = x.unfold(1, self.n_fft, self.hop) * self.window
        power = torch.fft.rfft(frames, n=self.n_fft).abs().square()
        return (torch.matmul(power, self.mel) + 1e-5).log()


class EfficientATMel(FrontEnd):
    name = "efficientat"
    released_normalization = {"mean": -4.5, "std": 2.5}  # EfficientAT's (x + 4.5) / 5
    sample_rate, bins, hop_ms, window_ms = 32000, 128, 10.0, 25.0
    window, hop, n_fft, fmin, fmax = 800, 320, 1024, 0.0, 15000.0

    @classmethod
    def from_params(cls, params: dict, precision: str = "float64") -> "EfficientATMel":
        return cls(precision)

    def params(self) -> dict:
        return {**super().params(), "n_fft": self.n_fft, "fmin": self.fmin, "fmax": self.fmax,
                "preemphasis": 0.97, "log_offset": 1e-5}

    def frames_of(self, samples: int) -> int:
        return 1 + (samples - 2) // self.hop if samples >= 2 else 0  # pre-emphasis takes one sample

    def samples_for(self, frames: int) -> int:
        return (frames - 1) * self.hop + 2

    def module(self, target_frames: int | None = None, dtype: torch.dtype | None = None) -> MelSTFT:
        return MelSTFT(self.sample_rate, self.bins, self.window, self.hop, self.n_fft, self.fmin, self.fmax,
                       dtype or self.dtype, target_frames)

    def frames(self, wave):
        with torch.no_grad():
            return self.module()(wave[None])[0].float()

    def clips(self, waves, target_frames, device):
        transform = self.module(target_frames).to(device)
        with torch.no_grad():
            feats = torch.cat([transform(w[None].to(device)) for w in waves])
        return feats, torch.tensor([self.frames_of(len(w)) for w in waves])

    def graph(self, target_frames):
        return _Stored(self.module(target_frames, torch.float32))

    def describe(self) -> str:
        return (f"{self.sample_rate} Hz mono audio, EfficientAT's log mel spectrogram (pre-emphasis 0.97, a centred "
                f"1024-point STFT of 800-sample Hann windows every 320 samples, {self.bins} Kaldi mel bins from 0 Hz "
                "to 15 kHz, log(mel + 1e-5))")


class _Stored(nn.Module):
    """A transform's frames rounded to float16, as the store holds them."""

    def __init__(self, transform: nn.Module):
        super().__init__()
        self.transform = transform

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.transform(waves).half().float()


FRONTEND = EfficientATMel
