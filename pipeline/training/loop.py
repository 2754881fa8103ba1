"""Stages `train_teacher`, `train_student`, `train_baseline`: one training loop, read top to bottom.

- teacher:  its architecture on the ground-truth loss.
- student:  the other architecture on lambda * L_gt + (1 - lambda) * L_kd toward the teacher's predictions, from
            the cache (the teacher model is never loaded), its cached views, or online (pipeline/training/teaching.py).
- baseline: the student's architecture on the ground-truth loss alone, so the gain from distillation shows.
- teacher part j (dump.cross_fit: k): the teacher trained without part j of the training clips, so that the dump
            can take those clips' targets from a teacher that never saw them (pipeline/training/cross_fit.py).

Each epoch: a plan of batches is drawn (pipeline/training/batches.py), each batch becomes the model input and its
targets, one optimizer step is taken, and the epoch is logged (DVCLive) and saved for resuming.

Under torchrun (distributed.nproc_per_node > 1, pipeline/runtime.py) every rank draws the same plan of global
batches and takes its share of each, DistributedDataParallel averages the gradients, and rank 0 alone validates,
logs and saves while the others wait at a barrier.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn
from dvclive import Live
from rich.progress import Progress
from torch.nn.parallel import DistributedDataParallel

from .. import layout
from ..evaluation.inference import predict
from ..evaluation.metrics import compute_metrics, headline
from ..models import build_model
from ..models.checkpoint import save_checkpoint
from ..models.pretrained import load_pretrained
from ..runs import Run
from ..runtime import World, autocast, device, world
from ..stores import FeatureStore
from .augment import AugmentConfig
from .averaging import WeightAverage
from .batches import Augmenter, BatchSource, ZarrRows, balanced_weights, to_device, training_plan
from .cross_fit import held_out_clips, part_of_rows
from .losses import cmkd_loss
from .resident import ResidentRows, use_resident
from .resume import resume, run_id, save_resume_state
from .teaching import teaching_for


def train(settings, role: str, run: Run, part: int | None = None) -> dict:
    """Train `role` in `run` (or, with `part`, the teacher of that cross-fit part); returns the last epoch's log."""
    cfg, model_cfg = settings.train, settings.model(role)
    if part is None:
        checkpoint, live_dir, resume_path = (layout.checkpoint(role, run), layout.live_dir(role, run),
                                             layout.resume_state(role, run))
    else:
        checkpoint, live_dir, resume_path = (layout.part_checkpoint(run, part), layout.part_live_dir(run, part),
                                             layout.part_resume_state(run, part))
    torch.manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)  # the same on every rank: every rank draws the same plans
    ranks = world(settings.distributed.backend)
    dev = device()
    store = FeatureStore(layout.FEATURES, run.split)
    teaching = teaching_for(role, settings, store, run, dev)
    lam = settings.distill.lam if teaching.record else 1.0  # lambda = 1: the ground-truth loss alone

    model = build_model(model_cfg, len(store.classes), store.num_frames, store.num_mel_bins)
    if model_cfg.pretrained:
        loaded = load_pretrained(model, model_cfg.pretrained)
        print(f"{role}: {len(loaded['loaded'])} tensors from {model_cfg.pretrained}, "
              f"initialised: {', '.join(loaded['initialised']) or 'none'}")
        if role == "teacher" and part is None and adoptable(loaded, store):
            return adopt(settings, run, model, model_cfg, loaded, store, checkpoint)
        say_input_differences(loaded["source"], store, role)
    if ranks.size > 1 and settings.distributed.sync_batchnorm and dev.type == "cuda":  # (SyncBatchNorm is GPU-only)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over every rank's share
    model = model.to(dev)
    step_model = for_training(model, dev, cfg, ranks)  # the same weights, maybe channels-last, DDP, compiled
    train_rows, val_rows = store.indices("train"), store.indices("val")
    cross_fit = None
    if part is not None:  # this part's clips are held out: the dump takes their targets from this teacher
        k = settings.dump.cross_fit
        if not 0 <= part < k:
            raise ValueError(f"cross-fit part {part}: dump.cross_fit is {k}, so parts are 0..{k - 1}")
        parts = part_of_rows(store, k, run.seed)
        train_rows = train_rows[parts[train_rows] != part]
        cross_fit = {"k": k, "part": part, "seed": run.seed, "held_out": held_out_clips(store, parts, part)}
    weights = balanced_weights(store.labels[train_rows]) if cfg.balanced_sampling else None
    batch = cfg.batch_size * ranks.size  # the global batch: each of N processes takes batch_size clips of it
    steps_per_epoch = max(1, len(train_rows) // batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=model_cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                                 fused=dev.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg))
    augment, seeds = teaching.augmentation(AugmentConfig.from_train(cfg))
    source = batch_source(store, teaching, Augmenter(augment, store.num_frames, store.num_mel_bins, train_rows, seeds),
                          cfg, dev, ranks.part)

    # a run killed mid-training continues from its last finished epoch, if nothing it depends on has changed
    this_run = run_id(role, run.split, run.seed, model_cfg.model_dump(), cfg.model_dump(), lam,
                      settings.distill.tau, store.fingerprint, teaching.record, cross_fit)
    start, history, kept = resume(resume_path, this_run, model, optimizer, scheduler, rng)
    averaged, snapshots = WeightAverage(kept.get("averaged")), kept.get("snapshots", [])
    best = kept.get("best")  # train.select: best: the epoch with the best validation score so far, and its weights
    key = "mAP" if store.multi_label else "accuracy"  # the validation score (evaluation/metrics.headline)
    live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) if ranks.is_main else None
    for entry in history if live is not None else []:  # the curves of the epochs before a resume
        log_epoch(live, entry)

    with Progress(disable=not ranks.is_main) as progress:
        name = role if part is None else f"teacher part {part}"
        bar = progress.add_task(f"train {name} ({model_cfg.name}, {run})", total=model_cfg.epochs * steps_per_epoch,
                                completed=start * steps_per_epoch)
        for epoch in range(start, model_cfg.epochs):
            model.train()
            started, sums, seen = time.perf_counter(), torch.zeros(3, device=dev), 0
            plan = training_plan(rng, train_rows, batch, weights, augment.active, teaching.views)
            for part in source.batches(plan, teaching.reads):  # this rank's share of each batch
                x, y = to_device(part, store.normalize, dev)  # normalised, augmented, labels mixed alike
                targets = teaching.targets(part, x, y)
                losses = train_step(step_model, optimizer, scheduler, x, y, targets, lam, store.multi_label)
                sums += losses * len(x)  # summed on the device: no GPU sync per step
                seen += len(x)
                progress.advance(bar)

            totals = ranks.sum(torch.cat([sums, torch.tensor([seen], device=dev, dtype=sums.dtype)]))
            loss, gt_loss, kd_loss, seen = totals.tolist()  # waits for the device: the time below is complete
            train_seconds = time.perf_counter() - started
            if not all(math.isfinite(v) for v in (loss, gt_loss, kd_loss)):
                raise FloatingPointError(f"{role}: loss is not finite in epoch {epoch + 1} "
                                         f"({loss}, {gt_loss}, {kd_loss})")
            if not ranks.is_main:  # the main process validates, logs and saves; the others wait for it
                ranks.barrier()
                continue
            key, value = headline(validate(model, source, store, val_rows, cfg.batch_size))
            history.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                            "train/loss": loss / seen, "train/gt_loss": gt_loss / seen, "train/kd_loss": kd_loss / seen,
                            "train/samples_per_s": seen / train_seconds, "train/seconds": time.perf_counter() - started,
                            f"val/{key}": value})
            log_epoch(live, history[-1])
            progress.console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in history[-1].items()))
            if cfg.select == "best" and (best is None or value > best["value"] or math.isnan(best["value"])):
                best = {"epoch": epoch + 1, "value": value, "weights": _copy_to_cpu(model.state_dict())}
            if epoch >= model_cfg.epochs - cfg.average_last:
                averaged.add(model.state_dict())
            if epoch >= model_cfg.epochs - cfg.ensemble_last:
                snapshots.append(_copy_to_cpu(model.state_dict()))
            save_resume_state(resume_path, this_run, epoch + 1, history, model, optimizer,
                              scheduler, rng, kept={"averaged": averaged.state(), "snapshots": snapshots, "best": best})
            ranks.barrier()

    if not ranks.is_main:
        return {}

    # which weights the checkpoint keeps (train.select, average_last, ensemble_last), recorded in it
    weight_average = None
    selection = {"select": cfg.select, "epoch": model_cfg.epochs, f"val/{key}": history[-1][f"val/{key}"]}
    if cfg.select == "best":
        model.load_state_dict(best["weights"])
        selection.update({"epoch": best["epoch"], f"val/{key}": best["value"]})
        print(f"{role}: kept epoch {best['epoch']} of {model_cfg.epochs}, the best on validation ({key} "
              f"{best['value']:.4g})")
    if cfg.average_last:
        model.load_state_dict(averaged.average(model.state_dict()))
        key, value = headline(validate(model, source, store, val_rows, cfg.batch_size))
        weight_average = {"epochs": averaged.count, f"val/{key}": value}
        selection = {"select": f"average of the last {averaged.count} epochs", "epoch": None, f"val/{key}": value}
        print(f"{role}: weights averaged over the last {averaged.count} epochs, val {key} {value:.4g}")
    if cfg.ensemble_last:
        selection = {"select": f"ensemble of the last {len(snapshots)} epochs", "epoch": None}
    live.end()
    save_checkpoint(
        checkpoint, model,
        role=role, run=run.split, seed=run.seed, architecture=settings.architecture(role),
        model_config=model_cfg.model_dump(), num_classes=len(store.classes), num_frames=store.num_frames,
        num_mel_bins=store.num_mel_bins, classes=store.classes, features_fingerprint=store.fingerprint,
        normalization={"mean": store.mean, "std": store.std}, multi_label=store.multi_label,
        features=dict(store.group.attrs.get("feature_params", {})), teacher=teaching.record,
        distill=settings.distill.model_dump(by_alias=True) if teaching.record else None,
        train=cfg.model_dump(), history=history, selection=selection, weight_average=weight_average,
        ensemble=snapshots or None, cross_fit=cross_fit,
    )
    resume_path.unlink(missing_ok=True)
    return history[-1]


def adoptable(loaded: dict, store: FeatureStore) -> bool:
    """A ready teacher: a cmkd checkpoint (one `cmkd convert` wrote) predicting exactly this dataset's classes."""
    return loaded["source"]["classes"] == list(store.classes) and not loaded["initialised"]


def adopt(settings, run: Run, model: nn.Module, model_cfg, loaded: dict, store: FeatureStore, checkpoint) -> dict:
    """The pretrained teacher used as is (AudioSet's AST on AudioSet): saved as this run's teacher without training,
    with the normalisation it was trained with and the sha256 of the file it came from."""
    from ..models.checkpoint import file_sha256

    source = {**loaded["source"], "sha256": file_sha256(model_cfg.pretrained)}
    norm = source["normalization"] or {"mean": store.mean, "std": store.std}
    print(f"teacher: adopted {model_cfg.pretrained} as is (it predicts this dataset's {len(store.classes)} classes; "
          f"sha256 {source['sha256'][:12]}), normalised as it was trained: mean {norm['mean']:.4g}, std "
          f"{norm['std']:.4g} (this run's training clips: {store.mean:.4g}, {store.std:.4g})")
    save_checkpoint(
        checkpoint, model, role="teacher", run=run.split, seed=run.seed, architecture=settings.architecture("teacher"),
        model_config=model_cfg.model_dump(), num_classes=len(store.classes), num_frames=store.num_frames,
        num_mel_bins=store.num_mel_bins, classes=store.classes, features_fingerprint=store.fingerprint,
        normalization={"mean": norm["mean"], "std": norm["std"]}, multi_label=store.multi_label,
        features=dict(store.group.attrs.get("feature_params", {})), teacher=None, distill=None,
        train=None, history=[], selection={"select": "adopted", "epoch": None}, weight_average=None, ensemble=None,
        adopted=source, cross_fit=None)
    live = layout.live_dir("teacher", run)  # the stage's declared curves: none, it did not train
    (live / "plots").mkdir(parents=True, exist_ok=True)
    (live / "metrics.json").write_text(json.dumps({"adopted": source["path"], "sha256": source["sha256"]}) + "\n")
    return {}


def say_input_differences(source: dict, store: FeatureStore, role: str) -> None:
    """A fine-tune normalises with its dataset's statistics (the AST recipe) and adapts to this run's frames; say
    so where the pretrained model was trained on other inputs."""
    norm = source.get("normalization")
    if norm and (abs(norm["mean"] - store.mean) > 0.05 or abs(norm["std"] - store.std) > 0.05):
        print(f"{role}: fine-tuning a model trained on inputs normalised with mean {norm['mean']:.4g}, std "
              f"{norm['std']:.4g}; this run's training clips have {store.mean:.4g}, {store.std:.4g}, which training "
              "uses (the AST recipe fine-tunes on the target dataset's statistics)")
    if source.get("num_frames") and source["num_frames"] != store.num_frames:
        print(f"{role}: the pretrained model took {source['num_frames']} frames, features.target_frames is "
              f"{store.num_frames}: its position embeddings were adapted (cropped or interpolated in time)")


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, x: torch.Tensor, y: torch.Tensor,
               targets: torch.Tensor | None, lam: float, multi_label: bool) -> torch.Tensor:
    """One optimizer step on a batch already on the device; returns (loss, gt loss, kd loss) without a sync."""
    with autocast(x.device):
        logits = model(x)
    loss, gt, kd = cmkd_loss(logits.float(), y, targets, lam, multi_label)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return torch.stack([loss, gt, kd]).detach()


def lr_factor(step: int, steps_per_epoch: int, cfg) -> float:
    """Linear warm-up over the first `warmup_steps` steps, then step decay by epoch (the AST/PSLA schedule)."""
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    epoch = step // steps_per_epoch
    decays = 0 if epoch < cfg.lr_decay_start else (epoch - cfg.lr_decay_start) // cfg.lr_decay_every + 1
    return warmup * cfg.lr_decay**decays


def for_training(model: nn.Module, dev: torch.device, cfg, ranks: World = World()) -> nn.Module:
    """The module the training steps call: channels-last for a CNN on CUDA, DistributedDataParallel over several
    processes (gradients averaged over the ranks' shares of each batch), `torch.compile`d if train.compile.

    It shares its parameters with `model`, which is what gets evaluated and saved (no `module.` or `_orig_mod.`
    prefixes).
    """
    if dev.type == "cuda" and cfg.channels_last and getattr(model, "prefers_channels_last", False):
        model.to(memory_format=torch.channels_last)
    step_model = model
    if ranks.size > 1:
        step_model = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    return torch.compile(step_model) if cfg.compile else step_model


def batch_source(store: FeatureStore, teaching, augmenter: Augmenter, cfg, dev: torch.device,
                 part: tuple[int, int] = (0, 1)) -> BatchSource:
    """The stores in device memory when they fit (train.resident), else a loader reading them; `part`: this rank's
    share of each batch."""
    if use_resident(cfg.resident, store, teaching.cache, dev):
        rows = ResidentRows(store, dev, teaching.cache, teaching.cache_rows)
    else:
        rows = ZarrRows(store, teaching.cache, teaching.cache_rows)
    return BatchSource(rows, augmenter, cfg.num_workers, pin_memory=dev.type == "cuda", part=part)


def validate(model: nn.Module, source: BatchSource, store: FeatureStore, rows: np.ndarray, batch_size: int) -> dict:
    whole = replace(source, part=(0, 1))  # every clip, in the one process that validates
    return compute_metrics(predict(model, whole, rows, batch_size, store.normalize), store.labels[rows],
                           store.multi_label)


def _copy_to_cpu(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def log_epoch(live: Live, entry: dict) -> None:
    live.step = entry["epoch"]
    for key, value in entry.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()
