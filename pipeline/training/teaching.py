"""What a model learns from besides its labels: one small class per teaching mode, each giving a batch the
teacher's probabilities it is distilled towards (`teacher_probs`), and the params that switch the modes (`distill:`,
validated here: a new mode and its switch are this file alone).

  Teaching      the base: what every mode answers (which cached logits a batch carries, the augmentation it trains
                with, its teacher's probabilities, the record of what it learned from)
  Labels        a model trained on labels (teacher, baseline, part teacher): no teacher, the loss is L_gt alone
  CachedTeacher the student, from the teacher's cached predictions on the clean clips (dump.views: 0). The
                augmentation (masks, shift) is treated as label-preserving: a clip's target stays its clean-clip
                prediction; mixup mixes the targets of a clip and its partner with the weight it mixes their inputs
                (as EfficientAT does with its stored logits)
  CachedViews   the student, replaying cached augmented views (dump.views: K): each clip's input is the view's, bit
                for bit, and its target the teacher's prediction on exactly that input (CED's approach)
  OnlineTeacher the paper's way, kept to measure what the cache saves: the frozen teacher runs on every batch

The teacher's probabilities are psi(z_t / tau) (pipeline/task). A clip the cache lacks (distill.missing: gt_only)
takes its label instead: the KL to the labels has the ground-truth loss's gradient, so it trains on L_gt alone.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import Field

from .. import layout
from ..data.augment import AugmentSettings, mix
from ..models.checkpoint import check_trained_on, load_checkpoint, teacher_record
from ..runs import Run
from ..settings import Section, owned_section, validated
from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from ..stores.schema import StoreMismatchError
from ..task import Task, task_for
from .jobs import Job


class DistillSettings(Section):
    """params.yaml `distill:` -- the CMKD loss, lambda * L_gt + (1 - lambda) * L_kd(student, teacher / tau), and
    which teaching mode a student learns in."""
    lam: float = Field(0.5, ge=0, le=1, alias="lambda")
    tau: float = Field(4.0, gt=0)  # chosen on validation (docs/measurements.md "The sweep")
    missing: Literal["error", "gt_only"] = "error"  # training clips the cache lacks: refused, or trained on L_gt
    online: bool = False           # the frozen teacher on every batch instead of the cache (OnlineTeacher)


owned_section("distill", lambda key, raw, where: validated(DistillSettings, raw, (key,), where))


class Teaching:
    reads = "none"        # which cached logits each batch must carry (pipeline/data/batches.py)
    views = 0             # > 0: the epoch plan draws a cached view per clip
    cache: PredictionStore | None = None
    cache_rows: np.ndarray | None = None
    record: dict | None = None  # the teacher, as the checkpoint records what the model learned from

    def augmentation(self, augment: AugmentSettings) -> tuple[AugmentSettings, np.ndarray | None]:
        """The augmentation this mode trains with, and the view seeds it is drawn from (None: a seed per batch)."""
        return augment, None

    def teacher_probs(self, batch: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """The probabilities the batch's clips are distilled towards [clips, classes], or None (labels alone)."""
        return None


class Labels(Teaching):
    """Labels alone: the base's answers (no teacher, the batch as the plan drew it)."""


class CachedTeacher(Teaching):
    reads = "clean"

    def __init__(self, cache: PredictionStore, cache_rows: np.ndarray, tau: float, task: Task):
        self.cache, self.cache_rows, self.tau, self.task = cache, cache_rows, tau, task
        self.record = {**cache.teacher, "cache": str(cache.path), "views": None}

    def teacher_probs(self, batch, x, y):
        own = self._probs(batch, "teacher_logits", "has_teacher", "y", x.device)
        if "params" not in batch:
            return own
        partner = self._probs(batch, "partner_logits", "partner_has_teacher", "y_partner", x.device)
        return mix(own, partner, batch["params"])

    def _probs(self, batch, logits, has, labels, device):
        probs = self.task.teacher_probs(batch[logits].to(device, non_blocking=True), self.tau)
        return torch.where(batch[has].to(device)[:, None], probs, batch[labels].to(device, non_blocking=True))


class CachedViews(CachedTeacher):
    reads = "views"

    def __init__(self, cache: PredictionStore, cache_rows: np.ndarray, tau: float, task: Task):
        super().__init__(cache, cache_rows, tau, task)
        self.views = cache.views["count"]
        self.record["views"] = cache.views

    def augmentation(self, augment):
        return AugmentSettings.model_validate(self.cache.views["config"]), self.cache.view_seeds  # what was drawn

    def teacher_probs(self, batch, x, y):  # the view's input already holds its mixup: y is mixed, the target is not
        probs = self.task.teacher_probs(batch["teacher_logits"].to(x.device, non_blocking=True), self.tau)
        return torch.where(batch["has_teacher"].to(x.device)[:, None], probs, y)


class OnlineTeacher(Teaching):
    def __init__(self, teacher: nn.Module, record: dict, tau: float, task: Task,
                 rescale: tuple[float, float] = (1.0, 0.0)):
        self.teacher, self.record, self.tau, self.task = teacher.requires_grad_(False), record, tau, task
        self.rescale = rescale  # the student's normalised input -> the teacher's (an adopted teacher's statistics)

    def teacher_probs(self, batch, x, y):
        autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda")
        with torch.no_grad(), autocast:
            logits = self.teacher(x * self.rescale[0] + self.rescale[1])
        return self.task.teacher_probs(logits.float(), self.tau)


def teaching_for(job: Job, settings, store: FeatureStore, run: Run, device: torch.device) -> Teaching:
    """The mode `job` trains in: a student learns from its direction's teacher (cached, views or online), every
    other model from labels alone. A cache that does not belong to this feature store, class list, run or clip
    order is refused."""
    if job.role != "student":
        return Labels()
    distill, direction = settings.distill, job.direction
    if distill.online:
        path = layout.checkpoint(layout.labels_model(direction.teacher), run)
        teacher, meta = load_checkpoint(path, device)
        if meta.frontend_name != store.frontend:
            raise StoreMismatchError(f"distill.online runs the teacher ({path}) on the student's batches, but it takes "
                                     f"the {meta.frontend_name} front-end and the student the {store.frontend}: "
                                     "distil from the cache (distill.online: false), which serves any front-end")
        check_trained_on(meta, path, store)
        rescale = store.normalization.to(meta.input_normalization)
        return OnlineTeacher(teacher, {**teacher_record(path, meta), "online": True}, distill.tau,
                             task_for(store.multi_label), rescale)
    cache = PredictionStore(layout.predictions(direction.name, run))
    cache_rows = cache.check_matches(store, store.indices("train"), distill.missing)
    mode = CachedViews if cache.views else CachedTeacher
    return mode(cache, cache_rows, distill.tau, task_for(store.multi_label))

