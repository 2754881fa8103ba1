"""Front-ends: how audio becomes a model's input frames [frames, bins]. A model family names the one it was made
with (`Family.frontend`); each front-end is one file of this package, registered by its name:

  fbank       fbank.py        the Kaldi fbank of the AST/PSLA recipe, as params `features` set it (16 kHz, 128 mel
                              bins, 25 ms every 10 ms, the whole-clip mean removed): data/features.zarr
  efficientat efficientat.py  EfficientAT's and PaSST's 32 kHz STFT mel (log(mel + 1e-5)): data/frontends/
  beats       beats.py        BEATs' Kaldi fbank (a povey window on the waveform scaled by 2^15): data/frontends/

Each front-end computes a clip's raw frames (the store holds them; the normalisation a model is fed with is its
run's, or the one a converted checkpoint records) in float64 or float32, says how many frames a number of samples
makes, and gives a traceable module from audio to frames that exported graphs carry. A clip shorter than the
window is padded the front-end's own way (the fbank's frames with zeros, as the AST recipe pads; a waveform front-end's
audio with silence, as its model was trained), a longer one cropped to its start.
"""
from __future__ import annotations

import importlib

import torch
import torch.nn as nn

DEFAULT = "fbank"  # the front-end of params `features` and data/features.zarr
PRECISION = {"float64": torch.float64, "float32": torch.float32}


class FrontEnd:
    name: str = ""
    sample_rate: int = 16000
    bins: int = 128
    hop_ms: float = 10.0
    window_ms: float = 25.0
    released_normalization: dict | None = None  # the normalisation the released models of this front-end take

    def __init__(self, precision: str = "float64"):
        self.precision = precision

    @property
    def dtype(self) -> torch.dtype:
        return PRECISION[self.precision]

    def params(self) -> dict:
        """What the front-end's values depend on (a store's fingerprint and a checkpoint record them)."""
        return {"frontend": self.name, "sample_rate": self.sample_rate, "num_mel_bins": self.bins,
                "frame_shift_ms": self.hop_ms, "frame_length_ms": self.window_ms}

    def frames_of(self, samples: int) -> int:
        """The frames a clip of `samples` samples makes."""
        raise NotImplementedError

    def samples_for(self, frames: int) -> int:
        """The samples `frames` frames span (what a clip is decoded up to, and a waveform window's length)."""
        raise NotImplementedError

    def decoded(self, target_frames: int) -> int:
        """The samples of a clip the features stage decodes for a window of `target_frames` (what it computes from)."""
        return self.samples_for(target_frames)

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """A whole waveform's frames [frames, bins] (float32)."""
        raise NotImplementedError

    def clips(self, waves: list[torch.Tensor], target_frames: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clip's frames, padded or cropped to `target_frames` ([clips, target_frames, bins], in the
        front-end's precision), and each clip's frames before that [clips]."""
        raise NotImplementedError

    def graph(self, target_frames: int) -> nn.Module:
        """Audio [batch, samples] (every clip the batch's length) -> frames [batch, target_frames, bins] as the store
        holds them (float16-rounded), traceable and exportable."""
        raise NotImplementedError

    def describe(self) -> str:
        """The model card's line on what the model takes."""
        raise NotImplementedError


def frontend_named(name: str, params: dict | None = None, precision: str = "float64") -> FrontEnd:
    """The front-end `name` (its file's `FRONTEND` class; fbank's built from `params`, params `features` or a
    checkpoint's record of them)."""
    try:
        module = importlib.import_module(f"pipeline.features.{name}")
    except ModuleNotFoundError:
        module = None
    cls = getattr(module, "FRONTEND", None)
    if cls is None or cls.name != name:
        raise KeyError(f"unknown front-end {name!r} (pipeline/features/frontend.py lists them)")
    return cls.from_params(params or {}, precision)


def checkpoint_frontend(meta) -> FrontEnd:
    """The front-end a checkpoint's model takes (the one its record names, with the parameters it records), in
    float64 as the features stage computes it."""
    return frontend_named(meta.frontend_name, meta.fbank)
