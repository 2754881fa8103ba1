"""Stages `train_teacher`, `train_student`, `train_baseline`: one training loop, read top to bottom.

- teacher:  its architecture on the ground-truth loss.
- student:  the other architecture on lambda * L_gt + (1 - lambda) * L_kd toward the cached teacher predictions;
            the teacher model is never loaded, only data/teacher_predictions.zarr.
- baseline: the student's architecture on the ground-truth loss alone, so the gain from distillation shows.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
from rich.progress import Progress

from . import layout
from .augment import SpecAugment, mixup
from .checkpoint import build_model, check_trained_on, load_checkpoint, save_checkpoint, teacher_record
from .data import balanced_weights, batches_of, loader
from .ensemble import WeightAverage
from .inference import device as default_device, predict
from .losses import cmkd_loss, teacher_targets
from .metrics import compute_metrics, headline
from .models.pretrained import load_pretrained
from .params import architecture, model_config
from .resident import ResidentStore, use_resident
from .stores import FeatureStore, PredictionStore
from .views import augmented_input, mix_labels


def lr_factor(step: int, steps_per_epoch: int, cfg: dict) -> float:
    """Linear warm-up over the first `warmup_steps` steps, then step decay by epoch (the AST/PSLA schedule)."""
    warmup = min(1.0, (step + 1) / cfg["warmup_steps"]) if cfg["warmup_steps"] else 1.0
    epoch = step // steps_per_epoch
    decays = 0 if epoch < cfg["lr_decay_start"] else (epoch - cfg["lr_decay_start"]) // cfg["lr_decay_every"] + 1
    return warmup * cfg["lr_decay"] ** decays


def train(role: str, params: dict, run: str = "main") -> dict:
    cfg, seed = params["train"], params["seed"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = default_device()

    store = FeatureStore(layout.FEATURES, run)
    multi_label = store.multi_label
    predictions, lam, tau = None, 1.0, 1.0  # lambda = 1: the ground-truth loss alone
    cache_rows = views = online_teacher = teacher = None  # teacher: what the student learns from (provenance)
    if role == "student":
        lam, tau = params["distill"]["lambda"], params["distill"]["tau"]
        if params["distill"].get("online"):  # the paper's way, for comparison: the teacher runs on every batch
            path = layout.checkpoint("teacher", run)
            online_teacher, ckpt = load_checkpoint(path, dev)
            check_trained_on(ckpt, path, store)
            online_teacher.requires_grad_(False)
            teacher = {**teacher_record(path, ckpt), "online": True}
        else:
            predictions = PredictionStore(layout.predictions(run))
            teacher = {**predictions.teacher, "cache": str(predictions.path), "views": predictions.views}
            # a wrong cache makes a silently wrong student: refuse it instead
            cache_rows = predictions.check_matches(store, store.indices("train"),
                                                   params["distill"].get("missing", "error"))
            if predictions.views:  # replay the teacher's augmented views instead of drawing new augmentation
                views = predictions.view_sampler(store)

    model_cfg = model_config(params, role)
    epochs = model_cfg.get("epochs", cfg["epochs"])  # architectures train for different lengths (method.md)
    model = build_model(model_cfg, len(store.classes), store.num_frames, store.features.shape[2])
    if model_cfg.get("pretrained"):
        loaded = load_pretrained(model, model_cfg["pretrained"])
        print(f"{role}: {len(loaded['loaded'])} tensors from {model_cfg['pretrained']}, "
              f"initialised: {', '.join(loaded['initialised']) or 'none'}")
    model = model.to(dev)
    step_model = for_training(model, dev, cfg)  # the same weights, maybe channels-last and compiled
    train_rows, val_rows = store.indices("train"), store.indices("val")
    sampling_weights = None
    if cfg.get("balanced_sampling"):  # PSLA: rare classes drawn more often, with replacement
        sampling_weights = balanced_weights(store.labels[train_rows])
        sampling_weights /= sampling_weights.sum()
    steps_per_epoch = max(1, len(train_rows) // cfg["batch_size"])
    optimizer = torch.optim.Adam(model.parameters(), lr=model_cfg["lr"], betas=tuple(cfg["betas"]),
                                 weight_decay=cfg["weight_decay"], fused=dev.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg))
    spec_augment = SpecAugment(cfg["freq_mask"], cfg["time_mask"])
    resident = None  # the stores in device memory when they fit (pipeline/resident.py); else the loader reads them
    if use_resident(cfg.get("resident", "auto"), store, predictions, dev):
        resident = ResidentStore(store, dev, predictions, cache_rows, views)

    # a run killed mid-training continues from its last finished epoch, if nothing it depends on has changed
    run_id = hashlib.sha256(json.dumps([role, run, model_cfg, cfg, seed, lam, tau, store.fingerprint, teacher],
                                       sort_keys=True).encode()).hexdigest()
    start_epoch, history, kept = resume(layout.resume_state(role, run), run_id, model, optimizer, scheduler, rng)
    # weight averaging and checkpoint ensembles over the last epochs (pipeline/ensemble.py)
    average_last, ensemble_last = cfg.get("average_last", 0), cfg.get("ensemble_last", 0)
    averaged, snapshots = WeightAverage(kept.get("averaged")), kept.get("snapshots", [])

    with Progress() as progress:
        bar = progress.add_task(f"train {role} ({model_cfg['name']}, run {run})", total=epochs * steps_per_epoch,
                                completed=start_epoch * steps_per_epoch)
        for epoch in range(start_epoch, epochs):
            model.train()
            started, sums, seen = time.perf_counter(), torch.zeros(3, device=dev), 0
            epoch_rows = (rng.choice(train_rows, len(train_rows), p=sampling_weights) if sampling_weights is not None
                          else rng.permutation(train_rows))
            batches = batches_of(epoch_rows, cfg["batch_size"], shuffle=False, drop_last=True)
            view_choice = [rng.integers(views.count, size=len(b)) for b in batches] if views else None
            source = (resident.batches(batches, view_choice) if resident is not None else
                      loader(store, batches, predictions, cfg["num_workers"], pin_memory=dev.type == "cuda",
                             cache_rows=cache_rows, views=views, view_choice=view_choice))
            for batch in source:
                x = augmented_input(batch, store.normalize, dev)  # with views: the input the teacher saw
                y = batch["y"].to(dev, non_blocking=True)
                cached = has_teacher = None
                if predictions is not None:
                    cached = batch["teacher_logits"].to(dev, non_blocking=True)
                    has_teacher = batch["has_teacher"].to(dev, non_blocking=True)
                step_augment, step_cfg = spec_augment, cfg
                if views is not None:  # the view already holds the masks and mixup: nothing more is drawn
                    y = mix_labels(y, batch["y_partner"].to(dev, non_blocking=True), batch["view_params"])
                    step_augment, step_cfg = nn.Identity(), {**cfg, "mixup": 0.0}
                losses = train_step(step_model, optimizer, scheduler, step_augment, x, y, cached, lam, tau,
                                    multi_label, step_cfg, online_teacher=online_teacher, has_teacher=has_teacher)
                sums += losses * len(x)  # summed on the device: no GPU sync per step
                seen += len(x)
                progress.advance(bar)

            sums_cpu = sums.tolist()  # waits for the device: the training time below is complete
            train_seconds = time.perf_counter() - started
            if not all(math.isfinite(v) for v in sums_cpu):
                raise FloatingPointError(f"{role}: loss is not finite in epoch {epoch + 1} ({sums_cpu})")
            val_logits = predict(model, store, val_rows, cfg["batch_size"], cfg["num_workers"], resident)
            val = compute_metrics(val_logits, store.labels[val_rows], multi_label)
            key, value = headline(val)
            history.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                            "seconds": time.perf_counter() - started, "train_samples_per_s": seen / train_seconds,
                            "train_loss": sums_cpu[0] / seen,
                            "train_gt_loss": sums_cpu[1] / seen, "train_kd_loss": sums_cpu[2] / seen,
                            f"val_{key}": value})  # last column: what `dvc plots` draws by default
            progress.console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in history[-1].items()))
            if epoch >= epochs - average_last:
                averaged.add(model.state_dict())
            if epoch >= epochs - ensemble_last:
                snapshots.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
            save_resume_state(layout.resume_state(role, run), run_id, epoch + 1, history, model, optimizer, scheduler,
                              rng, kept={"averaged": averaged.state(), "snapshots": snapshots})

    weight_average = None
    if average_last:
        model.load_state_dict(averaged.average(model.state_dict()))
        val_logits = predict(model, store, val_rows, cfg["batch_size"], cfg["num_workers"], resident)
        key, value = headline(compute_metrics(val_logits, store.labels[val_rows], multi_label))
        weight_average = {"epochs": averaged.count, f"val_{key}": value}
        print(f"{role}: weights averaged over the last {averaged.count} epochs, val {key} {value:.4g}")

    layout.role_dir(role, run).mkdir(parents=True, exist_ok=True)
    with open(layout.history(role, run), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    save_checkpoint(
        layout.checkpoint(role, run), model,
        role=role, run=run, architecture=architecture(params, role), model_config=model_cfg,
        num_classes=len(store.classes), num_frames=store.num_frames, num_mel_bins=store.features.shape[2],
        classes=store.classes, features_fingerprint=store.fingerprint,
        normalization={"mean": store.mean, "std": store.std},
        teacher=teacher,
        distill=params["distill"] if role == "student" else None,
        train=cfg, seed=seed, history=history,
        weight_average=weight_average, ensemble=snapshots or None,
    )
    layout.resume_state(role, run).unlink(missing_ok=True)
    return history[-1]


def for_training(model: nn.Module, dev: torch.device, cfg: dict) -> nn.Module:
    """The module the training steps call: channels-last for a CNN on CUDA, `torch.compile`d if train.compile.

    It shares its parameters with `model`, which is what gets evaluated and saved (no `_orig_mod.` prefixes).
    """
    if dev.type == "cuda" and cfg.get("channels_last", True) and getattr(model, "prefers_channels_last", False):
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.get("compile", False) else model


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, spec_augment: nn.Module,
               x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None, lam: float, tau: float,
               multi_label: bool, cfg: dict, online_teacher: nn.Module | None = None,
               has_teacher: torch.Tensor | None = None) -> torch.Tensor:
    """One optimizer step on a batch already on the device; returns (loss, gt loss, kd loss) without a sync.

    Cached teacher logits are targets for the clean clip, mixed by mixup like the labels. An `online_teacher`
    (the paper's way, kept for comparison) instead predicts on the very batch the student sees, augmented.
    Clips not in the cache (has_teacher False, distill.missing: gt_only) take their labels as the teacher's
    targets: the KL to the labels has the ground-truth loss's gradient, so they train on L_gt alone.
    """
    teacher = teacher_targets(teacher_logits, tau, multi_label) if teacher_logits is not None else None
    if teacher is not None and has_teacher is not None:
        teacher = torch.where(has_teacher[:, None], teacher, y)
    x = spec_augment(x)
    x, (y, teacher) = mixup(x, [y, teacher], cfg["mixup"], cfg["mixup_alpha"])
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda")
    if online_teacher is not None:
        with torch.no_grad(), autocast:
            teacher = teacher_targets(online_teacher(x).float(), tau, multi_label)
    with autocast:
        logits = model(x)
    loss, gt, kd = cmkd_loss(logits.float(), y, teacher, lam, multi_label)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return torch.stack([loss, gt, kd]).detach()


def save_resume_state(path, run_id, epoch, history, model, optimizer, scheduler, rng, kept: dict | None = None) -> None:
    state = {"run_id": run_id, "epoch": epoch, "history": history, "kept": kept or {}, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def resume(path, run_id, model, optimizer, scheduler, rng) -> tuple[int, list[dict], dict]:
    """Restore model, optimizer, scheduler and RNG states from `path`.

    Returns (first epoch to run, history, what the run kept across epochs: weight sums and ensemble snapshots).
    """
    if not path.exists():
        return 0, [], {}
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["run_id"] != run_id:  # made by a run with other params or inputs: start over
        path.unlink()
        return 0, [], {}
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.bit_generator.state = json.loads(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    print(f"resuming {path.parent.name} after epoch {state['epoch']} from {path}")
    return state["epoch"], state["history"], state.get("kept", {})
