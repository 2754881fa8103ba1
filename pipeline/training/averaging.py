"""Weight averaging over the last epochs (PSLA's WA, `train.average_last`): the final model's parameters and
buffers are the mean of the model's state after each of the last N epochs."""
from __future__ import annotations

import torch


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
