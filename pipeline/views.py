"""Cached augmented views: the teacher's predictions on K augmented versions of every clip, replayable exactly.

The paper's teacher sees the student's augmented input. A plain cache holds one prediction per clean clip, so
the student's augmented input and its target disagree. Here the dump stage draws K views per clip, each from a
recorded seed, runs the teacher on each and stores its predictions per view. At each step the student takes one
stored view per clip and redraws the augmentation from the same seed, so its input is the very one the teacher
saw (CED's approach), and teacher inference stays out of student training.

A view, applied to normalised features [T, F], in this order:
  mixup       x = w * x + (1 - w) * x_partner, with probability `mixup` (w ~ Beta(alpha, alpha), the partner a
              training clip); the labels are mixed with the same w
  time shift  x rolled along time by s frames, |s| <= time_shift
  masks       one frequency mask and one time mask (SpecAugment, widths up to freq_mask and time_mask) set to 0
Its parameters are a pure function of (seed, view config, clip size, training rows), so replaying needs the seed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

PARAMS = ("partner", "weight", "shift", "freq_start", "freq_width", "time_start", "time_width")


def view_config(train_cfg: dict, dump_cfg: dict) -> dict:
    """What a view draws from: the student's SpecAugment and mixup settings, plus the dump's time shift."""
    return {"freq_mask": train_cfg["freq_mask"], "time_mask": train_cfg["time_mask"], "mixup": train_cfg["mixup"],
            "mixup_alpha": train_cfg["mixup_alpha"], "time_shift": dump_cfg.get("time_shift", 0)}


def view_seeds(clip_ids: np.ndarray, views: int, seed: int) -> np.ndarray:
    """One 63-bit seed per (clip, view), from the clip's id: stable when clips are added or reordered."""
    seeds = np.empty((len(clip_ids), views), dtype=np.uint64)
    for row, clip in enumerate(clip_ids):
        for k in range(views):
            digest = hashlib.sha256(f"{seed}/{clip}/{k}".encode()).digest()
            seeds[row, k] = int.from_bytes(digest[:8], "little") >> 1
    return seeds


def draw_view(seed: int, cfg: dict, frames: int, bins: int, train_rows: np.ndarray, row: int) -> np.ndarray:
    """The parameters (PARAMS) of one view of clip `row`, drawn from its seed alone."""
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    partner, weight = row, 1.0
    if cfg["mixup"] > 0 and rng.random() < cfg["mixup"]:
        partner = int(train_rows[rng.integers(len(train_rows))])
        weight = float(rng.beta(cfg["mixup_alpha"], cfg["mixup_alpha"]))
    shift = int(rng.integers(-cfg["time_shift"], cfg["time_shift"] + 1)) if cfg["time_shift"] else 0
    freq_width = int(rng.integers(0, min(cfg["freq_mask"], bins) + 1)) if cfg["freq_mask"] else 0
    freq_start = int(rng.integers(0, bins - freq_width + 1))
    time_width = int(rng.integers(0, min(cfg["time_mask"], frames) + 1)) if cfg["time_mask"] else 0
    time_start = int(rng.integers(0, frames - time_width + 1))
    return np.array([partner, weight, shift, freq_start, freq_width, time_start, time_width], dtype=np.float64)


def draw_views(seeds: np.ndarray, rows: np.ndarray, cfg: dict, frames: int, bins: int,
               train_rows: np.ndarray) -> np.ndarray:
    """[B, len(PARAMS)] for clips `rows`, each from its own seed."""
    return np.stack([draw_view(s, cfg, frames, bins, train_rows, r) for s, r in zip(seeds, rows)])


@dataclass
class ViewSampler:
    """Redraws the parameters of (clip, view) pairs from the recorded seeds."""
    seeds: np.ndarray        # uint64 [clips, K]
    cfg: dict                # view_config
    frames: int
    bins: int
    train_rows: np.ndarray   # the mixup partners' pool: the run's training clips

    @property
    def count(self) -> int:
        return self.seeds.shape[1]

    def params(self, rows: np.ndarray, ks: np.ndarray) -> np.ndarray:
        return draw_views(self.seeds[rows, ks], rows, self.cfg, self.frames, self.bins, self.train_rows)


def augmented_input(batch: dict, normalize, device: torch.device) -> torch.Tensor:
    """The model input of a batch on `device`: normalised, and with its views applied when it has them.

    The dump (teacher) and the student both build their input here, so the two are the same computation."""
    x = normalize(batch["x"].to(device, non_blocking=True))
    if "view_params" not in batch:
        return x
    partner = normalize(batch["x_partner"].to(device, non_blocking=True))
    return apply_views(x, partner, batch["view_params"])


def apply_views(x: torch.Tensor, x_partner: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Apply each clip's view to normalised features x [B, T, F] (x_partner: each clip's mixup partner)."""
    b, t, f = x.shape
    p = params.to(x.device)
    weight = p[:, 1].to(x.dtype).view(b, 1, 1)
    x = weight * x + (1 - weight) * x_partner
    shift = p[:, 2].long()
    source = (torch.arange(t, device=x.device).view(1, t) - shift.view(b, 1)) % t  # roll by `shift` frames
    x = torch.gather(x, 1, source.unsqueeze(-1).expand(b, t, f))
    bins, frames = torch.arange(f, device=x.device).view(1, f), torch.arange(t, device=x.device).view(1, t)
    freq_masked = (bins >= p[:, 3:4]) & (bins < p[:, 3:4] + p[:, 4:5])
    time_masked = (frames >= p[:, 5:6]) & (frames < p[:, 5:6] + p[:, 6:7])
    keep = ~(freq_masked.unsqueeze(1) | time_masked.unsqueeze(2))
    return x * keep.to(x.dtype)


def mix_labels(y: torch.Tensor, y_partner: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    weight = params[:, 1].to(y.device, y.dtype).view(-1, 1)
    return weight * y + (1 - weight) * y_partner
