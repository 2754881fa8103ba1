"""BEATs' front-end (Chen et al. 2023, github.com/microsoft/unilm/tree/master/beats), as its released models were
trained: the 16 kHz waveform scaled to 16-bit sample values (x 2^15), then Kaldi's fbank with Kaldi's defaults
(`torchaudio.compliance.kaldi.fbank`'s): 25 ms povey windows every 10 ms, per-frame DC removal, pre-emphasis 0.97,
128 mel bins from 20 Hz to Nyquist, log floored at float32 epsilon. BEATs normalises by (x - 15.41663) / (2 x 6.55582),
which a converted checkpoint records. A clip shorter than the window is padded with silence before the transform.
Written from that description on cmkd's Kaldi fbank (fbank.py), checked against BEATs' own code
(tests/test_beats.py), of which no line is copied here.
"""
from __future__ import annotations

import torch

from .fbank import BatchedFbank, WaveformFrontEnd
from .frontend import FrontEnd

SCALE = 2.0**15


class BEATsFbank(FrontEnd):
    name = "beats"
    released_normalization = {"mean": 15.41663, "std": 6.55582}
    sample_rate, bins, hop_ms, window_ms = 16000, 128, 10.0, 25.0
    shift, size = 160, 400

    @classmethod
    def from_params(cls, params: dict, precision: str = "float64") -> "BEATsFbank":
        return cls(precision)

    def params(self) -> dict:
        return {**super().params(), "window": "povey", "scale": SCALE}

    def fbank(self, dtype: torch.dtype | None = None) -> BatchedFbank:
        return BatchedFbank(self.sample_rate, self.bins, self.hop_ms, self.window_ms, dtype=dtype or self.dtype,
                            window="povey", scale=SCALE, subtract_mean=False)

    def frames_of(self, samples: int) -> int:
        return 1 + (samples - self.size) // self.shift if samples >= self.size else 0

    def samples_for(self, frames: int) -> int:
        return (frames - 1) * self.shift + self.size

    def frames(self, wave):
        with torch.no_grad():
            feats, count = self.fbank()(wave[None], torch.tensor([len(wave)]))
        return feats[0, : int(count[0])].float()

    def clips(self, waves, target_frames, device):
        needed = self.samples_for(target_frames)
        padded = torch.stack([torch.cat([w, w.new_zeros(max(0, needed - len(w)))])[:needed] for w in waves])
        with torch.no_grad():
            feats, _ = self.fbank().to(device)(padded.to(device), torch.full((len(waves),), needed), target_frames)
        return feats, torch.tensor([self.frames_of(len(w)) for w in waves])

    def graph(self, target_frames):
        return _BEATsFrontEnd(self, target_frames)

    def describe(self) -> str:
        return (f"{self.sample_rate} Hz mono audio scaled by 2^15, Kaldi fbank with Kaldi's defaults (povey window, "
                f"{self.bins} mel bins, 25 ms frames every 10 ms, no dither), as BEATs computes it")


class _BEATsFrontEnd(WaveformFrontEnd):
    """Audio [batch, samples] -> BEATs' frames [batch, target_frames, bins], silence past a clip's end, float16-rounded
    as the store holds them; traceable."""

    def __init__(self, frontend: BEATsFbank, target_frames: int):
        super().__init__(frontend.sample_rate, frontend.bins, frontend.hop_ms, frontend.window_ms, target_frames)
        self.fbank = frontend.fbank(torch.float32)
        self.max_samples = frontend.samples_for(target_frames)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        x = torch.cat([waves.float(), waves.new_zeros(waves.shape[0], self.max_samples).float()], dim=1)
        x = x[:, : self.max_samples]
        lengths = torch.ones_like(x, dtype=torch.long).sum(dim=1)
        features, _ = self.fbank(x, lengths, self.target_frames)
        return features.half().float()


FRONTEND = BEATsFbank
