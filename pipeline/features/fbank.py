"""Kaldi fbank, the AST/PSLA recipe: per clip with torchaudio (the reference), or for a whole batch in one pass.

`torchaudio.compliance.kaldi.fbank` takes one clip at a time, so on a GPU it is bound by kernel launches (about
800 clips/s). BatchedFbank computes the same features, with the recipe's settings (`fbank` below:
whole-clip mean removed, per-frame DC removal, pre-emphasis 0.97, Hanning window, 512-point power spectrum,
Kaldi's mel banks reused from torchaudio, log floored at float32 epsilon, no energy column), for a padded batch
[B, samples] with each clip's true length. Frames that Kaldi would not produce (past a clip's end) are zero, like
`pad_or_crop` pads them. tests/test_batched_fbank.py checks it against torchaudio on real clips.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torchaudio
from torchaudio.compliance.kaldi import get_mel_banks

EPSILON = torch.finfo(torch.float32).eps  # Kaldi's floor on mel energies before the log
PREEMPHASIS = 0.97


def fbank(wave: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128,
          frame_shift_ms: float = 10.0, frame_length_ms: float = 25.0) -> torch.Tensor:
    """The AST/PSLA recipe: mean-subtracted waveform, Kaldi fbank with HTK-compatible mel, Hanning window."""
    wave = wave - wave.mean()
    return torchaudio.compliance.kaldi.fbank(
        wave.unsqueeze(0), htk_compat=True, sample_frequency=sample_rate, use_energy=False,
        window_type="hanning", num_mel_bins=num_mel_bins, dither=0.0,
        frame_shift=frame_shift_ms, frame_length=frame_length_ms,
    )


def pad_or_crop(feats: torch.Tensor, target_frames: int) -> torch.Tensor:
    """Zero-pad at the end or crop to `target_frames` rows (as the AST dataloader does)."""
    n = feats.shape[0]
    if n < target_frames:
        return torch.nn.functional.pad(feats, (0, 0, 0, target_frames - n))
    return feats[:target_frames]


class BatchedFbank(nn.Module):
    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 128, frame_shift_ms: float = 10.0,
                 frame_length_ms: float = 25.0):
        super().__init__()
        self.shift = int(sample_rate * frame_shift_ms / 1000)
        self.size = int(sample_rate * frame_length_ms / 1000)
        self.n_fft = 1 << (self.size - 1).bit_length()  # Kaldi's round_to_power_of_two
        # Kaldi's defaults: low_freq 20 Hz, high_freq = Nyquist, no VTLN warp
        mel, _ = get_mel_banks(num_mel_bins, self.n_fft, float(sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
        self.register_buffer("mel", nn.functional.pad(mel, (0, 1)).T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.size, periodic=False), persistent=False)

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames Kaldi makes from clips of `lengths` samples (snip_edges: only frames that fit entirely)."""
        return torch.where(lengths >= self.size, 1 + (lengths - self.size) // self.shift, 0)

    def samples_for(self, frames: int) -> int:
        return (frames - 1) * self.shift + self.size

    @torch.autocast("cuda", enabled=False)  # every step in float32, as Kaldi does: bf16 would change the values
    @torch.autocast("cpu", enabled=False)
    def forward(self, waves: torch.Tensor, lengths: torch.Tensor,
                target_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """waves float [B, S] (zero beyond each clip's length), lengths int [B].

        Returns (features [B, frames, mel_bins] float32, frames before padding or cropping [B]).
        With `target_frames`, features are cropped or zero-padded to exactly that many frames.
        """
        lengths = lengths.to(waves.device)
        num_frames = self.num_frames(lengths)
        out_frames = target_frames if target_frames is not None else int(num_frames.max())
        mean = waves.float().sum(dim=1) / lengths.clamp_min(1)  # the recipe's whole-clip mean (zeros past the end)
        # only the samples under the kept frames are transformed; from here on, Kaldi's operations in Kaldi's
        # order, so that float32 rounds the same way (Kaldi itself is ~2e-3 from a float64 computation near the
        # log floor, so a cleverer order would differ from it by that much)
        needed = self.samples_for(out_frames)
        x = waves.float()[:, :needed] - mean[:, None]
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
    """A list of 1-D waveforms as one zero-padded [B, max_len] tensor and their lengths."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths


class WaveformFrontEnd(nn.Module):
    """16 kHz audio [batch, samples] -> the model's features [batch, target_frames, mel bins], as the features stage
    makes them: the whole-clip mean removed (of the part the stage decodes: at most 4x the window,
    features/extract.py), Kaldi fbank (BatchedFbank, the recipe's settings), frames past the clip's end zero and
    a longer clip cropped to its first `target_frames`, rounded to float16 as the store holds them. Every clip of a
    batch has the batch's length. Traceable and exportable (ONNX's DFT for the FFT), so that an exported model can
    take audio."""

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
