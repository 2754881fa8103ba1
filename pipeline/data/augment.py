"""The one augmentation: its settings (params `augment:`), parameters drawn per clip from a generator, applied by
one function.

Every model that trains here (teacher, baseline, student with a plain cache, with cached views or with the teacher
online) and the dump's augmented views use `draw` and `apply`, so they all see the same distribution:

  mixup       with probability `mixup`, x = w * x + (1 - w) * x_partner, w ~ Beta(alpha, alpha), the partner drawn
              uniformly from the run's training clips (as the AST and PSLA recipes pick it from the whole dataset);
              labels, and a plain cache's teacher targets, are mixed with the same w
  time shift  x rolled along time by s frames, s uniform in -time_shift..time_shift
  masks       one frequency mask and one time mask (SpecAugment) set to 0, widths uniform in 0..freq_mask and
              0..time_mask (inclusive; a time_mask below 1 is that share of the window, so that the masks follow
              features.target_frames), each placed uniformly where it fits. mask_scale: clip scales the time mask's
              widest to the clip (time_mask x the clip's frames / the window's) and places it inside the clip: a
              recipe's 40 frames were set for clips that fill the window, and would erase most of a short word

A clip's draws travel by name (`Draws`: one array per field of FIELDS, a row per clip), from `draw` to `apply`
and `mix`; only a cache's audit record (view_params) stores them as columns, in FIELDS order.

Where the generator comes from is the only difference between the uses: a training batch draws from a seed the
epoch's plan gave it (pipeline/data/batches.py); a cached view draws from the 63-bit seed recorded for that
(clip, view) in the cache (`view_seeds`), so the student replays bit for bit the input the teacher saw.

A new augmentation touches this file alone: a field of AugmentSettings (params.yaml's `augment:` section, which
the training stages and the dump depend on as a whole), its parameters named in FIELDS, drawn in `draw` and applied
in `apply` (tests/test_one_place.py adds one).
"""
from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..settings import owned_section, validated

FIELDS = {"partner": np.int64, "weight": np.float64, "shift": np.int64, "freq_start": np.int64,  # what `draw`
          "freq_width": np.int64, "time_start": np.int64, "time_width": np.int64}              # gives, and its type
Draws = dict  # field name -> [clips] array (numpy, or a tensor once on the device)


class AugmentSettings(BaseModel):
    """params.yaml `augment:` -- what every model trains with and what the dump's views are drawn with."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    freq_mask: int = Field(24, ge=0)     # SpecAugment: one frequency and one time mask, widths uniform in 0..N
    time_mask: Annotated[int, Field(ge=0)] | Annotated[float, Field(gt=0, lt=1)] = 0.2  # frames, or (below 1) a
                                         # share of the window: masks that follow features.target_frames
    time_shift: int = Field(0, ge=0)     # roll each clip by up to this many frames
    mixup: float = Field(0.0, ge=0, le=1)   # probability that a clip is mixed with a training clip
    mixup_alpha: float = Field(10.0, gt=0)  # the mixing weight ~ Beta(alpha, alpha)
    mask_scale: Literal["window", "clip"] = "window"  # the time mask's widest: time_mask frames of the window, or
                                                      # that share of the clip (inside it)

    @property
    def active(self) -> bool:
        return bool(self.freq_mask or self.time_mask or self.mixup or self.time_shift)

    def as_dict(self) -> dict:
        return self.model_dump()


owned_section("augment", lambda key, raw, where: validated(AugmentSettings, raw, (key,), where))


def draw(rng: np.random.Generator, row: int, cfg: AugmentSettings, frames: int, bins: int,
         pool: np.ndarray, length: int | None = None) -> dict:
    """The parameters of one augmentation of clip `row`, by FIELDS name; `pool` holds the rows a mixup partner
    comes from, `length` the clip's frames before padding (mask_scale: clip). A field whose setting is off draws
    nothing, so that adding one leaves every other draw as it was."""
    partner, weight = row, 1.0
    if cfg.mixup > 0 and rng.random() < cfg.mixup:
        partner = int(pool[rng.integers(len(pool))])
        weight = float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha))
    shift = int(rng.integers(-cfg.time_shift, cfg.time_shift + 1)) if cfg.time_shift else 0
    freq_width = int(rng.integers(0, min(cfg.freq_mask, bins) + 1)) if cfg.freq_mask else 0
    freq_start = int(rng.integers(0, bins - freq_width + 1))
    span = frames if cfg.mask_scale == "window" or length is None else int(min(max(length, 1), frames))
    window_widest = cfg.time_mask if isinstance(cfg.time_mask, int) else int(round(cfg.time_mask * frames))
    widest = window_widest if span == frames else window_widest * span // frames
    time_width = int(rng.integers(0, min(widest, span) + 1)) if cfg.time_mask else 0
    time_start = int(rng.integers(0, span - time_width + 1))
    return {"partner": partner, "weight": weight, "shift": shift, "freq_start": freq_start, "freq_width": freq_width,
            "time_start": time_start, "time_width": time_width}


def _by_name(drawn: list[dict]) -> Draws:
    return {name: np.array([d[name] for d in drawn], dtype=dtype) for name, dtype in FIELDS.items()}


def draw_batch(seed: int, rows: np.ndarray, cfg: AugmentSettings, frames: int, bins: int,
               pool: np.ndarray, lengths: np.ndarray | None = None) -> Draws:
    """Each clip's draws: one generator seeded by the batch, drawing each clip in turn (`lengths`: every store
    row's frames before padding)."""
    rng = np.random.default_rng(seed)
    return _by_name([draw(rng, int(r), cfg, frames, bins, pool, None if lengths is None else int(lengths[r]))
                     for r in rows])


def draw_views(seeds: np.ndarray, rows: np.ndarray, cfg: AugmentSettings, frames: int, bins: int,
               pool: np.ndarray, lengths: np.ndarray | None = None) -> Draws:
    """Each clip's draws: clip rows[i] drawn from its own view seed seeds[i]."""
    return _by_name([draw(np.random.Generator(np.random.PCG64(int(s))), int(r), cfg, frames, bins, pool,
                          None if lengths is None else int(lengths[r])) for s, r in zip(seeds, rows)])


def take(draws: Draws, index) -> Draws:
    """The draws of some clips (an index or a slice of the batch)."""
    return {name: values[index] for name, values in draws.items()}


def to_device(draws: Draws, device) -> Draws:
    """The draws as tensors on `device` (where `apply` and `mix` run)."""
    return {name: torch.as_tensor(values).to(device, non_blocking=True) for name, values in draws.items()}


def as_columns(draws: Draws) -> np.ndarray:
    """[clips, len(FIELDS)]: the draws as a cache's audit record stores them (view_params)."""
    return np.stack([np.asarray(draws[name], dtype=np.float64) for name in FIELDS], axis=1)


def view_seeds(clip_ids: np.ndarray, views: int, seed: int) -> np.ndarray:
    """One 63-bit seed per (clip, view), from the clip's id: stable when clips are added or reordered."""
    seeds = np.empty((len(clip_ids), views), dtype=np.uint64)
    for row, clip in enumerate(clip_ids):
        for k in range(views):
            digest = hashlib.sha256(f"{seed}/{clip}/{k}".encode()).digest()
            seeds[row, k] = int.from_bytes(digest[:8], "little") >> 1
    return seeds


def apply(x: torch.Tensor, x_partner: torch.Tensor, draws: Draws) -> torch.Tensor:
    """Each clip's augmentation applied to normalised features x [B, T, F] (x_partner: each clip's mixup partner)."""
    b, t, f = x.shape
    d = to_device(draws, x.device)
    x = mix(x, x_partner, d)
    source = (torch.arange(t, device=x.device).view(1, t) - d["shift"].view(b, 1)) % t  # roll by the shift
    x = torch.gather(x, 1, source.unsqueeze(-1).expand(b, t, f))
    bins, frames = torch.arange(f, device=x.device).view(1, f), torch.arange(t, device=x.device).view(1, t)
    freq_start, time_start = d["freq_start"].view(b, 1), d["time_start"].view(b, 1)
    freq_masked = (bins >= freq_start) & (bins < freq_start + d["freq_width"].view(b, 1))
    time_masked = (frames >= time_start) & (frames < time_start + d["time_width"].view(b, 1))
    keep = ~(freq_masked.unsqueeze(1) | time_masked.unsqueeze(2))
    return x * keep.to(x.dtype)


def mix(a: torch.Tensor, a_partner: torch.Tensor, draws: Draws) -> torch.Tensor:
    """w * a + (1 - w) * a_partner with each clip's mixup weight: features, labels or teacher targets alike."""
    weight = torch.as_tensor(draws["weight"]).to(a.device, a.dtype).view(-1, *([1] * (a.dim() - 1)))
    return weight * a + (1 - weight) * a_partner
