"""What a model predicts and how it is scored: one object per kind of task, asked by every module that needs to know.

  SingleLabel  one class per clip (ESC-50): psi = softmax, L_gt = cross-entropy (against possibly mixed-up soft
               labels), L_kd = KL(p_t || p_s) averaged over clips; headline metric accuracy
  MultiLabel   any number of classes per clip (AudioSet, FSD50K): psi = sigmoid, L_gt = BCE, L_kd = per-class
               Bernoulli KL (the gradient of BCE against the soft targets), both averaged over clips and classes;
               headline metric mAP, also mean ROC-AUC and d-prime

The CMKD loss is L = lambda * L_gt(psi(z_s), y) + (1 - lambda) * L_kd(psi(z_s), psi(z_t / tau)): tau divides only
the teacher logits and there is no tau^2 factor, as in the paper. The headline metric, which validation selects by
and the report's intervals resample, is headline.py's, and every module scores with `Task.score` / `scores`; the
full set an evaluation reports (per class, AUC, d-prime, confusion) and which of them the report tabulates is
metrics.py's alone, which only the evaluation, the report and the audit import, so a new metric re-runs no training.
torch is imported by the losses alone: scoring (stage evaluate, the report) runs without it, which saves seconds
per stage.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import headline

if TYPE_CHECKING:
    import torch


class Task:
    name: str
    multi_label: bool
    headline: str               # the metric a report leads with and validation selects by
    per_class: str              # the per-class value (classes.json, the report's per-class plot)
    confusion: bool             # whether an evaluation counts a confusion matrix (the report draws it)
    mean_of_clips: bool         # the headline is a mean of per-clip values: a resample of the clips is unbiased

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def teacher_probs(self, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
        """psi(z_t / tau): the probabilities the student is distilled towards (mixup mixes these, not logits)."""
        return self.probabilities(teacher_logits.float() / tau)

    def gt_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_gt against the labels (soft where mixup mixed them)."""
        raise NotImplementedError

    def kd_loss(self, logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, teacher_probs: torch.Tensor | None,
             lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, L_gt, L_kd); without the teacher's probabilities (a model trained on labels) total = L_gt."""
        import torch

        logits = logits.float()
        gt = self.gt_loss(logits, labels)
        if teacher_probs is None:
            return gt, gt, torch.zeros_like(gt)
        kd = self.kd_loss(logits, teacher_probs)
        return lam * gt + (1 - lam) * kd, gt, kd

    def score(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The headline metric of the clips."""
        return float(self.scores(logits, labels, np.ones((1, len(labels))))[0])

    def scores(self, logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The headline metric under each weighting of the clips (weights [R, clips]: a bootstrap resample counts
        clip i as often as it was drawn), [R]."""
        raise NotImplementedError

    def logits_from_probabilities(self, p: np.ndarray) -> np.ndarray:
        """Logits whose psi gives back p (imported teacher probabilities), p already clipped away from 0 and 1."""
        raise NotImplementedError

    def confidence(self, probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, whether right) per prediction a calibration bins: the top class of each clip (single-label),
        every (clip, class) pair (multi-label)."""
        raise NotImplementedError

    def weakest(self, probs: np.ndarray, labels: np.ndarray, classes: list[str], top: int = 5) -> list[dict]:
        """Where the predictions go wrong most: the most frequent (true -> predicted) mistakes, or the classes with
        the lowest AP (`cmkd inspect` of a cache)."""
        raise NotImplementedError

    def target_statistics(self, probs: np.ndarray, labels: np.ndarray) -> dict:
        """How much a teacher's targets say beyond the labels: their mean entropy (nats), the mean top-1 probability
        and the mean probability of the labelled classes. Targets near one-hot on the labels (entropy ~0,
        labelled ~1) teach a student nothing its labels don't."""
        entropy, top1, labelled = [], [], []
        for start in range(0, len(probs), 8192):  # float64 copies of a block at a time, not of every clip
            p, y = probs[start : start + 8192], labels[start : start + 8192]
            entropy.append(self.entropy(np.clip(p.astype(np.float64), 1e-12, 1.0)))
            top1.append(p.max(axis=1))
            labelled.append(self.labelled_probability(p, y))
        return {"entropy": float(np.concatenate(entropy).mean()),
                "top1_probability": float(np.concatenate(top1).mean()),
                "labelled_probability": float(np.nanmean(np.concatenate(labelled)))}

    def __repr__(self) -> str:
        return self.name


class SingleLabel(Task):
    name, multi_label, headline = "single-label", False, "accuracy"
    per_class, confusion, mean_of_clips = "accuracy", True, True

    def probabilities(self, logits):
        return logits.softmax(dim=-1)

    def gt_loss(self, logits, labels):
        return -(labels * logits.log_softmax(dim=-1)).sum(dim=-1).mean()

    def kd_loss(self, logits, teacher_probs):
        from torch.nn.functional import kl_div

        return kl_div(logits.log_softmax(dim=-1), teacher_probs, reduction="batchmean")

    def score(self, logits, labels):
        return headline.accuracy(logits, labels)

    def scores(self, logits, labels, weights):
        return headline.accuracy(logits, labels, weights)

    def logits_from_probabilities(self, p):
        return np.log(p)

    def confidence(self, probs, labels):
        return probs.max(1), (probs.argmax(1) == labels.argmax(1)).astype(np.float64)

    def weakest(self, probs, labels, classes, top=5):
        truth, guess = labels.argmax(1), probs.argmax(1)
        pairs, counts = np.unique(np.stack([truth, guess], 1)[truth != guess], axis=0, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:top]
        return [{"true": classes[pairs[i][0]], "predicted": classes[pairs[i][1]], "clips": int(counts[i]),
                 "of true class": int((truth == pairs[i][0]).sum())} for i in order]

    @staticmethod
    def entropy(p):
        return -(p * np.log(p)).sum(axis=1)

    @staticmethod
    def labelled_probability(probs, labels):
        return probs[np.arange(len(probs)), labels.argmax(axis=1)]


class MultiLabel(Task):
    name, multi_label, headline = "multi-label", True, "mAP"
    per_class, confusion, mean_of_clips = "AP", False, False

    def probabilities(self, logits):
        return logits.sigmoid()

    def gt_loss(self, logits, labels):
        from torch.nn.functional import binary_cross_entropy_with_logits

        return binary_cross_entropy_with_logits(logits, labels)

    def kd_loss(self, logits, teacher_probs):
        from torch.nn.functional import binary_cross_entropy_with_logits

        # KL(Bern(p) || Bern(q)) = BCE(q; p) - H(p); the entropy term has no gradient but makes the value a KL
        entropy = -(teacher_probs.xlogy(teacher_probs) + (1 - teacher_probs).xlogy(1 - teacher_probs))
        return binary_cross_entropy_with_logits(logits, teacher_probs) - entropy.mean()

    def score(self, logits, labels):
        return headline.mean_ap(logits, labels)

    def scores(self, logits, labels, weights):
        return headline.mean_ap(logits, labels, weights)

    def logits_from_probabilities(self, p):
        return np.log(p) - np.log1p(-p)

    def confidence(self, probs, labels):
        return probs.ravel(), labels.ravel().astype(np.float64)

    def weakest(self, probs, labels, classes, top=5):
        aps = headline.average_precision(probs, labels)
        order = [c for c in np.argsort(aps, kind="stable") if np.isfinite(aps[c])][:top]
        return [{"class": classes[c], "AP": round(float(aps[c]), 4), "positives": int(labels[:, c].sum())}
                for c in order]

    @staticmethod
    def entropy(p):  # the mean over classes of each one's Bernoulli entropy
        q = np.clip(1 - p, 1e-12, 1.0)
        return -(p * np.log(p) + q * np.log(q)).mean(axis=1)

    @staticmethod
    def labelled_probability(probs, labels):
        return np.array([probs[i, labels[i] > 0].mean() if labels[i].any() else np.nan for i in range(len(probs))])


TASKS = {task.name: task for task in (SingleLabel(), MultiLabel())}


def task_for(multi_label: bool) -> Task:
    return TASKS["multi-label" if multi_label else "single-label"]


def task_named(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]
