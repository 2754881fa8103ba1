"""Combining weights and models: weight averaging over the last epochs, and ensembles of checkpoints or teachers.

- Weight averaging (PSLA's WA): the final model's parameters and buffers are the mean of the model's state after
  each of the last `train.average_last` epochs.
- Checkpoint ensembles (`train.ensemble_last`): the checkpoint also keeps the weights of the last epochs, and
  inference runs each and averages their logits. Averaging logits rather than probabilities keeps a cached
  ensemble's targets comparable to one teacher's logits under the same tau.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class WeightAverage:
    """Running mean of state dicts on the CPU (integer buffers such as BatchNorm's step count keep the last value)."""

    def __init__(self, state: dict | None = None):
        self.sums: dict[str, torch.Tensor] = (state or {}).get("sums", {})
        self.count: int = (state or {}).get("count", 0)
        self.last: dict[str, torch.Tensor] = (state or {}).get("last", {})

    def add(self, state_dict: dict[str, torch.Tensor]) -> None:
        for key, value in state_dict.items():
            value = value.detach().to("cpu", copy=True)
            if value.is_floating_point():
                self.sums[key] = self.sums[key] + value.double() if key in self.sums else value.double()
            else:
                self.last[key] = value
        self.count += 1

    def average(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: (self.sums[key] / self.count).to(value.dtype) if key in self.sums else self.last[key]
                for key, value in like.items()}

    def state(self) -> dict:
        return {"sums": self.sums, "count": self.count, "last": self.last}


class Ensemble(nn.Module):
    """Mean of the members' logits; members may be different architectures (a CNN and an AST teacher)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).float() for member in self.members]).mean(dim=0)
