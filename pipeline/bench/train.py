"""`cmkd bench --section train`: student samples/s three ways: pure (tensors already on the device: the ceiling),
cached (features and cached predictions through the loader, or resident in device memory: the real path), online
(the frozen teacher run on every batch: what the cache saves); with --compile also the compiled student and its
compile time. Each is the median of `repeats` interleaved rounds."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import layout
from ..data.batches import Augmenter, BatchSource, ZarrRows, to_device
from ..data.resident import ResidentRows
from ..models import build_model, family
from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from ..task import SingleLabel
from ..training.loop import for_training, train_step
from ..training.teaching import CachedTeacher, OnlineTeacher
from .common import Results, Size, model_config, random_plan, sync


@dataclass
class TrainVariant:
    """One way of feeding a student: its (model, optimizer, scheduler), a fresh iterable of batches, its teaching."""
    step: tuple
    batches: object   # () -> batches
    teaching: object


def bench_train(size: Size, size_name: str, dev: torch.device, settings, student: str, teacher: str,
                predictions: PredictionStore, compile_step: bool, results: Results) -> None:
    """Every way of feeding the student, timed `size.repeats` times in interleaved rounds (so that drift in the
    machine's speed hits them alike); each row is the median, with the range in its detail."""
    store = FeatureStore(layout.FEATURES)
    batch_size = family(student).bench_batch.get(size_name, size.batch)
    variants = train_variants(size, dev, settings, store, student, teacher, predictions, batch_size, compile_step)
    speeds = {name: [] for name in variants}
    compile_seconds = None
    for _ in range(size.repeats):
        for name, variant in variants.items():
            speed, warmup_seconds = timed_steps(size, dev, store, variant)
            speeds[name].append(speed)
            if name == "compiled pure step" and compile_seconds is None:
                compile_seconds = warmup_seconds
    median = {name: float(np.median(v)) for name, v in speeds.items()}
    details = train_details(median, teacher, batch_size, size, dev, compile_seconds)
    for name, value in median.items():
        spread = f"; median of {size.repeats}, {min(speeds[name]):.1f} to {max(speeds[name]):.1f}" \
            if size.repeats > 1 else ""
        results.add("train", f"{student} student: {name}", value, "samples/s", details[name] + spread,
                    runs=speeds[name])


def train_variants(size: Size, dev: torch.device, settings, store: FeatureStore, student: str, teacher: str,
                   predictions: PredictionStore, batch_size: int, compile_step: bool) -> dict[str, TrainVariant]:
    """name -> variant: the pure step on one resident batch (the ceiling), the cached path through the loader and
    resident in memory, the online teacher; with `compile_step` the same compiled."""
    classes, frames, bins = len(store.classes), store.num_frames, store.num_mel_bins
    augmenter = Augmenter(settings.augment, frames, bins, store.indices("train"))
    pin, steps = dev.type == "cuda", size.warmup + size.steps

    def new_student(compiled: bool):
        """One student per mode, shared by its variants and rounds: a compiled one is compiled once."""
        model = build_model(model_config(student), classes, frames, bins).to(dev).train()
        step_model = for_training(model, dev, settings.train.model_copy(update={"compile": compiled}))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
        return step_model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    def plan():
        return random_plan(store, batch_size, steps, 1)

    task = SingleLabel()
    cached = CachedTeacher(predictions, np.arange(len(store.clip_ids)), 1.0, task)
    loader = BatchSource(ZarrRows(store, predictions), augmenter, size.workers, pin_memory=pin)
    loader_features = BatchSource(ZarrRows(store), augmenter, size.workers, pin_memory=pin)
    # train.resident: the stores in device memory, batches gathered there (pipeline/data/resident.py)
    resident = BatchSource(ResidentRows(store, dev, predictions), augmenter)
    resident_features = BatchSource(ResidentRows(store, dev), augmenter)
    on_device = next(iter(resident.batches(plan()[:1], "clean")))  # one batch, already on the device
    teacher_model = build_model(model_config(teacher), classes, frames, bins).to(dev).eval()
    teacher_model = for_training(teacher_model, dev, settings.train)  # channels-last for a CNN teacher, as trained
    online = OnlineTeacher(teacher_model, {}, 1.0, task)
    eager = new_student(False)
    variants = {
        "pure step (ceiling)": TrainVariant(eager, lambda: [on_device] * steps, cached),
        "cached path": TrainVariant(eager, lambda: loader.batches(plan(), "clean"), cached),
        "cached path, resident stores": TrainVariant(eager, lambda: resident.batches(plan(), "clean"), cached),
        f"online teacher ({teacher})": TrainVariant(eager, lambda: loader_features.batches(plan()), online),
        f"online teacher ({teacher}), resident features": TrainVariant(
            eager, lambda: resident_features.batches(plan()), online),
    }
    if compile_step:
        compiled = new_student(True)
        variants.update({
            "compiled pure step": TrainVariant(compiled, lambda: [on_device] * steps, cached),
            "compiled, cached path": TrainVariant(compiled, lambda: loader.batches(plan(), "clean"), cached),
            "compiled, cached path, resident stores": TrainVariant(
                compiled, lambda: resident.batches(plan(), "clean"), cached),
            f"compiled, online teacher ({teacher})": TrainVariant(
                compiled, lambda: loader_features.batches(plan()), online),
        })
    return variants


def timed_steps(size: Size, dev: torch.device, store: FeatureStore, variant: TrainVariant) -> tuple[float, float]:
    """(samples/s over the timed steps, seconds of the untimed warm-up steps)."""
    model, optimizer, scheduler = variant.step
    seen, warm_started = 0, time.perf_counter()
    for i, batch in enumerate(variant.batches()):
        if i == size.warmup:
            sync(dev)
            warmup_seconds = time.perf_counter() - warm_started
            started = time.perf_counter()
        x, y = to_device(batch, store.normalization, dev)
        train_step(model, optimizer, scheduler, x, y, variant.teaching.teacher_probs(batch, x, y), 0.5, SingleLabel())
        seen += len(x) if i >= size.warmup else 0
    sync(dev)
    return seen / (time.perf_counter() - started), warmup_seconds


def train_details(median: dict, teacher: str, batch_size: int, size: Size, dev: torch.device,
                  compile_seconds: float | None) -> dict[str, str]:
    """Each row's detail: what it is relative to (the pure step, the online teacher)."""
    def ratio_to(name: str, other: str, what: str) -> str:
        return f"{median[name] / median[other]:.1%} of the {what}"

    def faster(name: str, other: str, what: str) -> str:
        return f"{what} is {median[name] / median[other]:.2f}x faster"

    online, online_resident = f"online teacher ({teacher})", f"online teacher ({teacher}), resident features"
    details = {
        "pure step (ceiling)": f"batch {batch_size}, tensors on {dev.type}",
        "cached path": ratio_to("cached path", "pure step (ceiling)", "pure step") + f"; {size.workers} loader workers",
        "cached path, resident stores": ratio_to("cached path, resident stores", "pure step (ceiling)", "pure step"),
        online: faster("cached path", online, "cached path"),
        online_resident: faster("cached path, resident stores", online_resident, "resident cached path"),
    }
    if "compiled pure step" in median:
        compiled_online = f"compiled, online teacher ({teacher})"
        details.update({
            "compiled pure step": f"{median['compiled pure step'] / median['pure step (ceiling)']:.2f}x eager; first "
                                  f"{size.warmup} steps incl. compile took {compile_seconds:.0f} s",
            "compiled, cached path": ratio_to("compiled, cached path", "compiled pure step", "compiled pure step"),
            "compiled, cached path, resident stores": ratio_to("compiled, cached path, resident stores",
                                                               "compiled pure step", "compiled pure step"),
            compiled_online: faster("compiled, cached path", compiled_online, "compiled cached path"),
        })
    return details
