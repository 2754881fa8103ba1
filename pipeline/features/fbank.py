"""Kaldi fbank, the AST/PSLA recipe, computed here for a batch of clips in one pass (no torchaudio needed).

The recipe (`torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type="hanning",
dither=0.0)` on the mean-subtracted waveform, as the AST, PSLA and Hugging Face feature extractors call it): 25 ms
frames every 10 ms that fit entirely in the clip, per-frame DC removal, pre-emphasis 0.97, Hanning window, 512-point
power spectrum, Kaldi's triangular mel banks (20 Hz to Nyquist, `mel_banks` below), log floored at float32 epsilon,
no energy column. `BatchedFbank` does Kaldi's operations in Kaldi's order for a padded batch [B, samples] with each
clip's true length; frames past a clip's end are zero, as `pad_or_crop` pads them.

Precision: the features stage computes in float64 and stores float16 (pipeline/stores/features.py). Kaldi and
torchaudio compute in float32, whose last bit depends on the CPU's vector paths and the thread count; the store's
float16 rounding turns such a last-bit difference into a different stored value now and then, and one student on a
few hundred clips amplifies that into points (docs/measurements.md). In float64, with the mel banks and the window
computed by the C library rather than by MKL's CPU-dependent vector functions, the same clip gives the same float16
values on any machine except when a value falls within ~1e-12 of a float16 rounding boundary. Exported graphs keep
float32 (what an ONNX runtime computes in). tests/test_batched_fbank.py checks both against torchaudio where it is
installed, and against torchaudio's values stored with the tests where it is not.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .frontend import FrontEnd

EPSILON = torch.finfo(torch.float32).eps  # Kaldi's floor on mel energies before the log
PREEMPHASIS = 0.97
LOW_FREQ = 20.0  # Kaldi's default lower edge of the first mel bin (high: Nyquist)


def mel_banks(num_bins: int, n_fft: int, sample_rate: float, low_freq: float = LOW_FREQ,
              high_freq: float | None = None) -> torch.Tensor:
    """Kaldi's mel filterbank (MelBanks, no VTLN warp) [n_fft // 2 + 1, num_bins]: triangles evenly spaced on
    1127 ln(1 + f / 700) from `low_freq` to `high_freq` (Nyquist by default), over the FFT bins below Nyquist (the
    Nyquist bin gets 0). In float32, as torchaudio's `get_mel_banks` computes them (the weights the field's
    checkpoints were trained with), whatever precision the spectra are then computed in, and the same on every
    CPU."""
    def mel(freq):
        return 1127.0 * math.log(1.0 + freq / 700.0)

    mel_low, mel_high = mel(low_freq), mel(sample_rate / 2 if high_freq is None else high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins).unsqueeze(1)
    left, center, right = mel_low + index * delta, mel_low + (index + 1.0) * delta, mel_low + (index + 2.0) * delta
    ratio = 1.0 + sample_rate / n_fft * torch.arange(n_fft // 2, dtype=torch.float32) / 700.0
    # the log by the C library in float64, rounded once to float32: torch's float32 log is MKL's vector log, whose
    # last bit differs between CPUs (MKL_CBWR), and a weight's last bit reaches the stored float16 values
    bins = 1127.0 * torch.tensor([math.log(r) for r in ratio.tolist()], dtype=torch.float64).to(torch.float32)
    weights = torch.clamp(torch.minimum((bins - left) / (center - left), (right - bins) / (right - center)), min=0)
    return nn.functional.pad(weights, (0, 1)).T.contiguous()


def symmetric_hann(size: int, power: float = 1.0) -> torch.Tensor:
    """The symmetric Hann window (to `power`: Kaldi's povey window is 0.85) in float64, by the C library's cos, as
    mel_banks computes its log: the same values on every CPU."""
    return torch.tensor([(0.5 - 0.5 * math.cos(2 * math.pi * i / (size - 1))) ** power for i in range(size)],
                        dtype=torch.float64)


def fbank(wave: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128, frame_shift_ms: float = 10.0,
          frame_length_ms: float = 25.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """One clip's features [frames, mel bins] (float32): the recipe above on its whole waveform."""
    frontend = BatchedFbank(sample_rate, num_mel_bins, frame_shift_ms, frame_length_ms, dtype=dtype)
    feats, frames = frontend(wave[None], torch.tensor([len(wave)]))
    return feats[0, : int(frames[0])].float()


def pad_or_crop(feats: torch.Tensor, target_frames: int) -> torch.Tensor:
    """Zero-pad at the end or crop to `target_frames` rows (as the AST dataloader does)."""
    n = feats.shape[0]
    if n < target_frames:
        return torch.nn.functional.pad(feats, (0, 0, 0, target_frames - n))
    return feats[:target_frames]


class BatchedFbank(nn.Module):
    """`window`: Kaldi's "hanning" (the recipe's) or "povey" (Kaldi's default: hanning to the 0.85); `scale`: what the
    waveform is multiplied by first (BEATs': 2^15, 16-bit sample values); `subtract_mean`: the recipe's whole-clip mean
    removed first (no effect on the values but float rounding: each frame's own mean is removed anyway)."""

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 128, frame_shift_ms: float = 10.0,
                 frame_length_ms: float = 25.0, dtype: torch.dtype = torch.float32, window: str = "hanning",
                 scale: float = 1.0, subtract_mean: bool = True):
        super().__init__()
        self.dtype, self.scale, self.subtract_mean = dtype, scale, subtract_mean
        self.shift = int(sample_rate * frame_shift_ms / 1000)
        self.size = int(sample_rate * frame_length_ms / 1000)
        self.n_fft = 1 << (self.size - 1).bit_length()  # Kaldi's round_to_power_of_two
        self.register_buffer("mel", mel_banks(num_mel_bins, self.n_fft, float(sample_rate)).to(dtype),
                             persistent=False)
        if window not in ("hanning", "povey"):
            raise ValueError(f"window must be hanning or povey, got {window!r}")
        hann = symmetric_hann(self.size, 1.0 if window == "hanning" else 0.85)  # Kaldi's windows
        self.register_buffer("window", hann.to(dtype), persistent=False)

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames Kaldi makes from clips of `lengths` samples (snip_edges: only frames that fit entirely)."""
        return torch.where(lengths >= self.size, 1 + (lengths - self.size) // self.shift, 0)

    def samples_for(self, frames: int) -> int:
        return (frames - 1) * self.shift + self.size

    @torch.autocast("cuda", enabled=False)  # every step in self.dtype: bf16 would change the values
    @torch.autocast("cpu", enabled=False)
    def forward(self, waves: torch.Tensor, lengths: torch.Tensor,
                target_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """waves float [B, S] (zero beyond each clip's length), lengths int [B].

        Returns (features [B, frames, mel_bins] in self.dtype, frames before padding or cropping [B]).
        With `target_frames`, features are cropped or zero-padded to exactly that many frames.
        """
        lengths = lengths.to(waves.device)
        num_frames = self.num_frames(lengths)
        out_frames = target_frames if target_frames is not None else int(num_frames.max())
        waves = waves.to(self.dtype) * self.scale if self.scale != 1.0 else waves.to(self.dtype)
        # only the samples under the kept frames are transformed; from here on, Kaldi's operations in Kaldi's order
        needed = self.samples_for(out_frames)
        x = waves[:, :needed]
        if self.subtract_mean:
            x = x - (waves.sum(dim=1) / lengths.clamp_min(1))[:, None]
        # zeros to `needed` samples (a concatenation, not a branch on the length, so that a traced or exported
        # graph takes any length; samples past a clip's end never enter a kept frame)
        x = torch.cat([x, x.new_zeros(x.shape[0], needed)], dim=1)[:, :needed]

        frames = x.unfold(1, self.size, self.shift)  # [B, frames, size], a view
        frames = frames - frames.mean(dim=2, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=2)  # x[max(0, j - 1)]
        frames = (frames - PREEMPHASIS * previous).mul_(self.window)
        power = torch.fft.rfft(frames, n=self.n_fft).abs().square_()
        feats = torch.matmul(power, self.mel).clamp_min_(EPSILON).log_()
        past_end = torch.arange(out_frames, device=x.device) >= num_frames[:, None]
        return feats.masked_fill_(past_end[..., None], 0.0), num_frames


def pad_batch(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of 1-D waveforms as one zero-padded [B, max_len] tensor (of their dtype) and their lengths."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    dtype = waves[0].dtype if waves else torch.float32
    batch = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0, dtype=dtype)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths


class WaveformFrontEnd(nn.Module):
    """16 kHz audio [batch, samples] -> the model's features [batch, target_frames, mel bins], as the features stage
    makes them: the whole-clip mean removed (of the part the stage decodes: at most 4x the window,
    features/extract.py), Kaldi fbank (BatchedFbank, in float32: what a graph runtime computes in), frames past the
    clip's end zero and a longer clip cropped to its first `target_frames`, rounded to float16 as the store holds
    them. Every clip of a batch has the batch's length. Traceable and exportable (ONNX's DFT for the FFT), so that an
    exported model can take audio."""

    def __init__(self, sample_rate: int, num_mel_bins: int, frame_shift_ms: float, frame_length_ms: float,
                 target_frames: int):
        super().__init__()
        self.fbank = BatchedFbank(sample_rate, num_mel_bins, frame_shift_ms, frame_length_ms)
        self.target_frames = target_frames
        needed_ms = (target_frames - 1) * frame_shift_ms + frame_length_ms
        self.max_samples = math.ceil(4 * needed_ms / 1000 * sample_rate)  # what extract.clip_audio decodes

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        waves = waves[:, : self.max_samples].float()
        lengths = torch.ones_like(waves, dtype=torch.long).sum(dim=1)  # the batch's length, traced as a tensor
        features, _ = self.fbank(waves, lengths, self.target_frames)
        return features.half().float()


class KaldiFbank(FrontEnd):
    """The AST/PSLA recipe's Kaldi fbank, as params `features` set it (the module docstring), the store's frames
    computed for a batch of clips at once."""
    name = "fbank"

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 128, frame_shift_ms: float = 10.0,
                 frame_length_ms: float = 25.0, precision: str = "float64"):
        super().__init__(precision)
        self.sample_rate, self.bins = int(sample_rate), int(num_mel_bins)
        self.hop_ms, self.window_ms = float(frame_shift_ms), float(frame_length_ms)
        self.shift = int(self.sample_rate * self.hop_ms / 1000)
        self.size = int(self.sample_rate * self.window_ms / 1000)
        self._batched: dict = {}

    @classmethod
    def from_params(cls, params: dict, precision: str = "float64") -> "KaldiFbank":
        keys = ("sample_rate", "num_mel_bins", "frame_shift_ms", "frame_length_ms")
        return cls(**{k: params[k] for k in keys if k in params}, precision=precision)

    def frames_of(self, samples: int) -> int:
        return 1 + (samples - self.size) // self.shift if samples >= self.size else 0

    def samples_for(self, frames: int) -> int:
        return (frames - 1) * self.shift + self.size

    def decoded(self, target_frames: int) -> int:
        """4x the window: a longer clip is cropped anyway, and the recipe's mean is that of the decoded part."""
        return math.ceil(4 * self.samples_for(target_frames))

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        return fbank(wave, self.sample_rate, self.bins, self.hop_ms, self.window_ms, dtype=self.dtype)

    def clips(self, waves, target_frames, device):
        key = str(device)
        if key not in self._batched:
            self._batched[key] = BatchedFbank(self.sample_rate, self.bins, self.hop_ms, self.window_ms,
                                              dtype=self.dtype).to(device)
        batch, lengths = pad_batch(waves)
        with torch.no_grad():
            return self._batched[key](batch.to(device, non_blocking=True), lengths, target_frames)

    def graph(self, target_frames):
        return WaveformFrontEnd(self.sample_rate, self.bins, self.hop_ms, self.window_ms, target_frames)

    def describe(self) -> str:
        return (f"{self.sample_rate} Hz mono audio, the waveform mean removed, Kaldi fbank (as "
                f"`torchaudio.compliance.kaldi.fbank` computes it: htk_compat, hanning window, {self.bins} mel bins, "
                f"{self.window_ms:g} ms frames every {self.hop_ms:g} ms, no dither, no energy)")


FRONTEND = KaldiFbank
