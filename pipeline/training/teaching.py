"""What a model learns from besides its labels: one small class per mode, each giving a batch its KD targets.

  Labels        a model trained on labels (teacher, baseline, part teacher): no KD targets, the loss is L_gt alone
  CachedTeacher the student, from the teacher's cached predictions on the clean clips (dump.views: 0). The
                augmentation (masks, shift) is treated as label-preserving: a clip's target stays its clean-clip
                prediction; mixup mixes the targets of a clip and its partner with the weight it mixes their inputs
                (as EfficientAT does with its stored logits)
  CachedViews   the student, replaying cached augmented views (dump.views: K): each clip's input is the view's, bit
                for bit, and its target the teacher's prediction on exactly that input (CED's approach)
  OnlineTeacher the paper's way, kept to measure what the cache saves: the frozen teacher runs on every batch

Targets are psi(z_t / tau) (pipeline/task). A clip the cache lacks (distill.missing: gt_only) takes its label as its
target: the KL to the labels has the ground-truth loss's gradient, so it trains on L_gt alone.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .. import layout
from ..data.augment import AugmentSettings, mix
from ..models.checkpoint import check_trained_on, load_checkpoint, teacher_record
from ..runs import Run
from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from ..task import Task, task_for
from .jobs import Job


class Labels:
    reads = "none"        # which cached logits each batch must carry (pipeline/data/batches.py)
    views = 0             # > 0: the epoch plan draws a cached view per clip
    cache: PredictionStore | None = None
    cache_rows: np.ndarray | None = None
    record: dict | None = None  # the teacher, as the checkpoint records what the model learned from

    def augmentation(self, augment: AugmentSettings) -> tuple[AugmentSettings, np.ndarray | None]:
        """The augmentation this mode trains with, and the view seeds it is drawn from (None: a seed per batch)."""
        return augment, None

    def targets(self, batch: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        return None


class CachedTeacher(Labels):
    reads = "clean"

    def __init__(self, cache: PredictionStore, cache_rows: np.ndarray, tau: float, task: Task):
        self.cache, self.cache_rows, self.tau, self.task = cache, cache_rows, tau, task
        self.record = {**cache.teacher, "cache": str(cache.path), "views": None}

    def targets(self, batch, x, y):
        own = self._target(batch, "teacher_logits", "has_teacher", "y", x.device)
        if "params" not in batch:
            return own
        partner = self._target(batch, "partner_logits", "partner_has_teacher", "y_partner", x.device)
        return mix(own, partner, batch["params"])

    def _target(self, batch, logits, has, labels, device):
        probs = self.task.teacher_targets(batch[logits].to(device, non_blocking=True), self.tau)
        return torch.where(batch[has].to(device)[:, None], probs, batch[labels].to(device, non_blocking=True))


class CachedViews(CachedTeacher):
    reads = "views"

    def __init__(self, cache: PredictionStore, cache_rows: np.ndarray, tau: float, task: Task):
        super().__init__(cache, cache_rows, tau, task)
        self.views = cache.views["count"]
        self.record["views"] = cache.views

    def augmentation(self, augment):
        return AugmentSettings.model_validate(self.cache.views["config"]), self.cache.view_seeds  # what was drawn

    def targets(self, batch, x, y):  # the view's input already holds its mixup: y is mixed, the target is not
        probs = self.task.teacher_targets(batch["teacher_logits"].to(x.device, non_blocking=True), self.tau)
        return torch.where(batch["has_teacher"].to(x.device)[:, None], probs, y)


class OnlineTeacher(Labels):
    def __init__(self, teacher: nn.Module, record: dict, tau: float, task: Task,
                 rescale: tuple[float, float] = (1.0, 0.0)):
        self.teacher, self.record, self.tau, self.task = teacher.requires_grad_(False), record, tau, task
        self.rescale = rescale  # the student's normalised input -> the teacher's (an adopted teacher's statistics)

    def targets(self, batch, x, y):
        autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda")
        with torch.no_grad(), autocast:
            logits = self.teacher(x * self.rescale[0] + self.rescale[1])
        return self.task.teacher_targets(logits.float(), self.tau)


def teaching_for(job: Job, settings, store: FeatureStore, run: Run, device: torch.device) -> Labels:
    """The mode `job` trains in: a student learns from its direction's teacher (cached, views or online), every
    other model from labels alone. A cache that does not belong to this feature store, class list, run or clip
    order is refused."""
    if job.role != "student":
        return Labels()
    distill, direction = settings.distill, job.direction
    if distill.online:
        path = layout.checkpoint(layout.labels_model(direction.teacher), run)
        teacher, meta = load_checkpoint(path, device)
        check_trained_on(meta, path, store)
        rescale = store.normalization.to(meta.input_normalization)
        return OnlineTeacher(teacher, {**teacher_record(path, meta), "online": True}, distill.tau,
                             task_for(store.multi_label), rescale)
    cache = PredictionStore(layout.predictions(direction.name, run))
    cache_rows = cache.check_matches(store, store.indices("train"), distill.missing)
    mode = CachedViews if cache.views else CachedTeacher
    return mode(cache, cache_rows, distill.tau, task_for(store.multi_label))

