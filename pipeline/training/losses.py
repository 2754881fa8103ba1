"""The CMKD loss: L = lambda * L_gt(psi(z_s), y) + (1 - lambda) * L_kd(psi(z_s), psi(z_t / tau)).

Multi-label: psi = sigmoid, L_gt = BCE, L_kd = per-class Bernoulli KL (the gradient of BCE against the soft
targets), both averaged over clips and classes. Single-label: psi = softmax, L_gt = cross-entropy (against
possibly mixed-up soft labels), L_kd = KL(p_t || p_s) averaged over clips. tau divides only the teacher logits
and there is no tau^2 factor, as in the paper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def teacher_targets(teacher_logits: torch.Tensor, tau: float, multi_label: bool) -> torch.Tensor:
    """psi(z_t / tau): the probabilities the student is distilled towards (mixup mixes these, not logits)."""
    z = teacher_logits.float() / tau
    return torch.sigmoid(z) if multi_label else torch.softmax(z, dim=-1)


def gt_loss(student_logits: torch.Tensor, targets: torch.Tensor, multi_label: bool) -> torch.Tensor:
    if multi_label:
        return F.binary_cross_entropy_with_logits(student_logits, targets)
    return -(targets * F.log_softmax(student_logits, dim=-1)).sum(dim=-1).mean()


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, multi_label: bool) -> torch.Tensor:
    if multi_label:
        # KL(Bern(p) || Bern(q)) = BCE(q; p) - H(p); the entropy term has no gradient but makes the value a KL
        entropy = -(torch.xlogy(teacher_probs, teacher_probs) + torch.xlogy(1 - teacher_probs, 1 - teacher_probs))
        return F.binary_cross_entropy_with_logits(student_logits, teacher_probs) - entropy.mean()
    return F.kl_div(F.log_softmax(student_logits, dim=-1), teacher_probs, reduction="batchmean")


def cmkd_loss(student_logits: torch.Tensor, targets: torch.Tensor, teacher_probs: torch.Tensor | None,
              lam: float, multi_label: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, L_gt, L_kd); without teacher targets (the baseline, the teacher itself) total = L_gt."""
    student_logits = student_logits.float()
    gt = gt_loss(student_logits, targets, multi_label)
    if teacher_probs is None:
        return gt, gt, torch.zeros_like(gt)
    kd = kd_loss(student_logits, teacher_probs, multi_label)
    return lam * gt + (1 - lam) * kd, gt, kd
