"""Ensembles of models: a checkpoint's last epochs (`train.ensemble_last`) or several teachers (`dump.extra_teachers`).

Inference runs each member and averages their logits. Averaging logits rather than probabilities keeps a cached
ensemble's targets comparable to one teacher's logits under the same tau.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Ensemble(nn.Module):
    """Mean of the members' logits; members may be different architectures (a CNN and an AST teacher)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).float() for member in self.members]).mean(dim=0)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The members' per-step logits [B, T', classes] averaged, each resampled to the first member's steps."""
        frames = [member.frame_logits(x).float() for member in self.members]
        steps = frames[0].shape[1]
        frames = [f if f.shape[1] == steps else
                  torch.nn.functional.interpolate(f.transpose(1, 2), size=steps, mode="linear").transpose(1, 2)
                  for f in frames]
        return torch.stack(frames).mean(dim=0)
