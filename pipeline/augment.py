"""Training-time augmentation on batches of features [B, T, F]: SpecAugment masks and mixup.

With a cached teacher, the teacher's targets were computed on the clean clip. SpecAugment is treated as
label-preserving (the clean-clip target stays), while mixup mixes the labels and the cached teacher targets with
the same weight as the inputs, as EfficientAT does with its stored ensemble logits.
"""
from __future__ import annotations

import torch
import torchaudio


class SpecAugment(torch.nn.Module):
    """One frequency mask and one time mask per clip, drawn independently for each clip (torchaudio)."""

    def __init__(self, freq_mask: int, time_mask: int):
        super().__init__()
        self.masks = torch.nn.Sequential(
            *([torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True)] if freq_mask else []),
            *([torchaudio.transforms.TimeMasking(time_mask, iid_masks=True)] if time_mask else []),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torchaudio masks the last two axes as (freq, time) and needs a channel axis for iid masks
        return self.masks(x.transpose(1, 2).unsqueeze(1)).squeeze(1).transpose(1, 2)


def mixup(x: torch.Tensor, targets: list[torch.Tensor | None], rate: float, alpha: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Mix each clip, with probability `rate`, with a random partner from the batch, weight ~ Beta(alpha, alpha).

    Every tensor in `targets` (labels, teacher probabilities, or None) is mixed with the same weights.
    """
    if rate <= 0:
        return x, targets
    b = x.shape[0]
    partner = torch.randperm(b, generator=generator)
    weight = torch.distributions.Beta(alpha, alpha).sample((b,))
    weight = torch.where(torch.rand(b, generator=generator) < rate, weight, torch.ones(b))
    weight = weight.to(x.device)

    def mix(t: torch.Tensor) -> torch.Tensor:
        w = weight.view(-1, *([1] * (t.dim() - 1))).to(t.dtype)
        return w * t + (1 - w) * t[partner.to(t.device)]

    return mix(x), [None if t is None else mix(t) for t in targets]
