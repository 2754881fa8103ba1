"""The input normalisation every model sees: (x - mean) / (2 * std) of the raw log-mel x (the AST recipe).

One value, written once: the feature store computes it from a run's training clips, a checkpoint records the one its
model was trained with, and every path that feeds a model (training, evaluation, the dump, an online teacher,
`cmkd predict`, the exported graphs) applies it through here. PSLA's checkpoints divide by std alone; they are
recorded with std / 2, so the formula stays this one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Normalization:
    mean: float
    std: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Raw log-mel (float16 as stored, or float) -> the model's input, float32 on x's device."""
        return (x.float() - self.mean) / (2 * self.std)

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """A model input -> the raw log-mel it came from."""
        return x * (2 * self.std) + self.mean

    def to(self, other: "Normalization") -> tuple[float, float]:
        """(scale, shift) with other(raw) == self(raw) * scale + shift: an input normalised with these statistics
        re-expressed in another model's (an online teacher adopted with its own statistics)."""
        return self.std / other.std, (self.mean - other.mean) / (2 * other.std)

    def differs_from(self, other: "Normalization", tolerance: float = 0.05) -> bool:
        return abs(self.mean - other.mean) > tolerance or abs(self.std - other.std) > tolerance

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Normalization":
        return cls(float(values["mean"]), float(values["std"]))

    def __str__(self) -> str:
        return f"mean {self.mean:.4g}, std {self.std:.4g}"
