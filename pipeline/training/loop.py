"""Stages `train` (and its cross-fit part teachers) and `train_student`: one training loop, read top to bottom.

`train(settings, job, run)` trains the model a Job describes (pipeline/training/jobs.py): an architecture on
labels, a direction's student on lambda * L_gt + (1 - lambda) * L_kd toward the teacher's cached predictions (the
teacher model is never loaded), or a cross-fit part teacher. Each epoch: a plan of batches is drawn
(pipeline/data/batches.py), each batch becomes the model input, its labels and its teacher's probabilities
(pipeline/training/teaching.py), one optimizer step is taken, the epoch is validated, logged (DVCLive) and saved
for resuming. At the end the weights
train.select / average_last / ensemble_last choose (pipeline/training/selection.py) go into the checkpoint, and the
checkpoint's logits on the held-out clips are kept for stage evaluate (pipeline/evaluation/held_out.py).

Under torchrun (distributed.nproc_per_node > 1, pipeline/runtime.py) every rank draws the same plan of global
batches and takes its share of each, DistributedDataParallel averages the gradients, and rank 0 alone validates,
logs and saves while the others wait at a barrier.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
from dvclive import Live
from rich.progress import Progress
from torch.nn.parallel import DistributedDataParallel

from .. import layout
from ..data.batches import Augmenter, BatchSource, ZarrRows, balanced_weights, inference_plan, to_device, training_plan
from ..data.resident import ResidentRows, resident_bytes, use_resident
from ..evaluation import held_out
from ..evaluation.inference import predict
from ..models import build_model, frontend_of
from ..models.checkpoint import Checkpoint, check_trained_on, load_checkpoint, save_checkpoint, trained_on
from ..models.pretrained import load_pretrained
from ..provenance import code_version, file_sha256
from ..runs import Run
from ..runtime import World, autocast, device, world
from ..stores.features import FeatureStore
from ..task import Task, task_for
from .cross_fit import held_out_clips, part_of_rows
from .jobs import Job
from .resume import resume, run_id, save_resume_state
from .selection import KeptWeights
from .teaching import Teaching, teaching_for


def train(settings, job: Job, run: Run) -> dict:
    """Train `job` in `run`; returns the last epoch's log (on the main process; {} on the others)."""
    s = set_up(settings, job, run)
    if already_trained(s):  # a stage re-run for another seed, say: this seed's model is kept
        print(f"{job} ({run}): kept {s.checkpoint}, trained by the same code on the same inputs and params")
        return {}
    start, history, kept_state = resume(s.resume_path, s.run_id, s.model, s.optimizer, s.scheduler, s.rng,
                                        s.ranks.size)
    kept = KeptWeights(settings.train, s.epochs, kept_state)
    live = Live(str(layout.live_dir(job.name, run)), dvcyaml=False, save_dvc_exp=False) if s.ranks.is_main else None
    for entry in history if live is not None else []:  # the curves of the epochs before a resume
        log_epoch(live, entry)

    with Progress(disable=not s.ranks.is_main) as progress:
        bar = progress.add_task(f"train {job} ({s.model_cfg.name}, {run})", total=s.epochs * s.steps_per_epoch,
                                completed=start * s.steps_per_epoch)
        for epoch in range(start + 1, s.epochs + 1):
            s.model.train()
            started, sums, seen = time.perf_counter(), torch.zeros(3, device=s.device), 0
            plan = training_plan(s.rng, s.train_rows, s.global_batch, s.weights, s.augment.active, s.teaching.views)
            for batch in s.source.batches(plan, s.teaching.reads):  # this rank's share of each batch
                x, y = to_device(batch, s.store.normalization, s.device)  # normalised, augmented, labels mixed alike
                teacher_probs = s.teaching.teacher_probs(batch, x, y)
                sums += train_step(s.step_model, s.optimizer, s.scheduler, x, y, teacher_probs, s.lam, s.task) * len(x)
                seen += len(x)
                progress.advance(bar)

            totals = s.ranks.sum(torch.cat([sums, torch.tensor([seen], device=s.device, dtype=sums.dtype)]))
            loss, gt_loss, kd_loss, seen = totals.tolist()  # waits for the device: the time below is complete
            train_seconds = time.perf_counter() - started
            if not all(math.isfinite(v) for v in (loss, gt_loss, kd_loss)):
                raise FloatingPointError(f"{job}: loss is not finite in epoch {epoch} ({loss}, {gt_loss}, {kd_loss})")
            if not s.ranks.is_main:  # the main process validates, logs and saves; the others wait for it
                s.ranks.barrier()
                continue
            score = validate(s)
            history.append({"epoch": epoch, "lr": s.optimizer.param_groups[0]["lr"],
                            "train/loss": loss / seen, "train/gt_loss": gt_loss / seen, "train/kd_loss": kd_loss / seen,
                            "train/samples_per_s": seen / train_seconds,
                            "train/seconds": time.perf_counter() - started, f"val/{s.task.headline}": score})
            log_epoch(live, history[-1])
            progress.console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in history[-1].items()))
            kept.after_epoch(epoch, s.model, score)
            save_resume_state(s.resume_path, s.run_id, epoch, history, s.model, s.optimizer, s.scheduler, s.rng,
                              kept.state(), s.ranks.size)
            s.ranks.barrier()

    if not s.ranks.is_main:
        return {}
    ensemble, selection, weight_average = kept.apply(s.model, history[-1][f"val/{s.task.headline}"], s.task.headline,
                                                     lambda: validate(s))
    live.end()
    save_checkpoint(s.checkpoint, s.model, describe(settings, s, history, selection, weight_average), ensemble)
    if job.role != "teacher part":  # what stage evaluate scores (a part teacher is not evaluated)
        predict_held_out(job.name, run, s.batch_size, settings.train.num_workers, replace(s.source, part=(0, 1)))
    s.resume_path.unlink(missing_ok=True)  # last: a stage killed before this resumes after its last epoch
    return history[-1]


@dataclass
class Setup:
    """Everything a training run's epochs use, made once by `set_up`."""
    job: Job
    run: Run
    checkpoint: object
    resume_path: object
    model_cfg: object
    epochs: int
    store: FeatureStore
    task: Task
    teaching: Teaching
    lam: float
    ranks: World
    device: torch.device
    model: nn.Module
    step_model: nn.Module
    train_rows: np.ndarray
    val_rows: np.ndarray
    weights: np.ndarray | None
    global_batch: int                    # every rank's share together
    batch_size: int                      # one rank's share, and the validation batch
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    scheduler: object
    augment: object
    source: BatchSource
    rng: np.random.Generator
    cross_fit: dict | None
    run_id: str
    bn_rows: np.ndarray | None = None    # train.bn_stats: recomputed: the clean training clips measured on


def set_up(settings, job: Job, run: Run) -> Setup:
    """The model (from its pretrained file, if any), the clips it trains on, the optimiser and schedule, the batch
    source and what it learns from, all seeded by the run's seed; and the run id a resume must match."""
    cfg, model_cfg = settings.train, settings.models[job.architecture]
    torch.manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)  # the same on every rank: every rank draws the same plans
    ranks, dev = world(settings.distributed.backend), device()
    store = FeatureStore(layout.store(frontend_of(model_cfg.name)), run.split)  # the store of its family's front-end
    if ranks.is_main and store.validation_note():
        print(store.validation_note())
    if ranks.is_main and store.untrained_classes():
        missing = store.untrained_classes()
        print(f"warning: run {run.split}: {len(missing)} of {len(store.classes)} classes have no training clip: "
              + ", ".join(missing))
    teaching = teaching_for(job, settings, store, run, dev)
    lam = settings.distill.lam if teaching.record else 1.0  # lambda = 1: the ground-truth loss alone

    model = build_model(model_cfg, len(store.classes), store.num_frames, store.num_mel_bins)
    if model_cfg.pretrained:
        loaded = load_pretrained(model, model_cfg.pretrained)
        print(f"{job}: {len(loaded['loaded'])} tensors from {model_cfg.pretrained}, "
              f"initialised: {', '.join(loaded['initialised']) or 'none'}")
        say_input_differences(loaded["source"], store, job)
    if ranks.size > 1 and settings.distributed.sync_batchnorm and dev.type == "cuda":  # (SyncBatchNorm is GPU-only)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over every rank's share
    model = model.to(dev)
    step_model = for_training(model, dev, cfg, ranks)  # the same weights, maybe channels-last, DDP, compiled

    train_rows, cross_fit = store.indices("train"), None
    if job.part is not None:  # this part's clips are held out: the dump takes their targets from this teacher
        train_rows, cross_fit = cross_fit_rows(settings, store, train_rows, job.part, run)
    global_batch = cfg.batch_size * ranks.size  # each of N processes takes batch_size clips of it
    steps_per_epoch = max(1, len(train_rows) // global_batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=model_cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                                 fused=dev.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg, model_cfg.epochs))
    augment, seeds = teaching.augmentation(settings.augment)
    augmenter = Augmenter(augment, store.num_frames, store.num_mel_bins, train_rows, seeds, store.clip_frames)
    source = batch_source(store, teaching, augmenter, cfg, dev, ranks.part)
    # a run killed mid-training continues from its last finished epoch, if nothing that shapes it has changed
    this_run = run_id(shaped_by(settings, job, run, model_cfg, augment, teaching, store, cross_fit, ranks))
    return Setup(job=job, run=run, checkpoint=layout.checkpoint(job.name, run),
                 resume_path=layout.resume_state(job.name, run), model_cfg=model_cfg, epochs=model_cfg.epochs,
                 store=store, task=task_for(store.multi_label), teaching=teaching, lam=lam, ranks=ranks, device=dev,
                 model=model,
                 step_model=step_model, train_rows=train_rows, val_rows=store.indices("val"),
                 weights=balanced_weights(store.labels[train_rows]) if cfg.balanced_sampling else None,
                 global_batch=global_batch, batch_size=cfg.batch_size, steps_per_epoch=steps_per_epoch,
                 optimizer=optimizer, scheduler=scheduler, augment=augment, source=source, rng=rng,
                 cross_fit=cross_fit, run_id=this_run, bn_rows=np.sort(np.random.default_rng(run.seed).choice(
                     train_rows, min(len(train_rows), BN_CLIPS), replace=False))
                 if cfg.bn_stats == "recomputed" else None)


def shaped_by(settings, job: Job, run: Run, model_cfg, augment, teaching: Teaching, store: FeatureStore,
              cross_fit: dict | None, ranks: World) -> dict:
    """Everything that shapes a training run, which a resume must match and a kept model must have been made by:
    the job and run, the model config (and the pretrained file's sha256), the recipe, the augmentation it trains
    with, a student's whole distill settings and teaching record (the teacher, its cache and views), the feature
    store's content, the cross-fit part, the world size, and the library's source."""
    return {"job": job.name, "run": run.split, "seed": run.seed, "model": model_cfg.model_dump(),
            "pretrained": file_sha256(model_cfg.pretrained) if model_cfg.pretrained else None,
            "train": settings.train.model_dump(), "augment": augment.model_dump(),
            "distill": settings.distill.model_dump(by_alias=True) if teaching.record else None,
            "teaching": teaching.record, "features": store.group.attrs.get("content_sha256", store.fingerprint),
            "cross_fit": cross_fit, "world_size": ranks.size, "code": code_version()["source_sha256"]}


def already_trained(s: Setup) -> bool:
    """Whether the checkpoint (and its held-out logits) at the job's path was made by exactly this training."""
    from ..models.checkpoint import read_checkpoint

    if not s.checkpoint.is_file() or (s.job.role != "teacher part" and not layout.held_out_logits(
            s.job.name, s.run).is_file()):
        return False
    try:
        return read_checkpoint(s.checkpoint)[2].shaped_by == s.run_id
    except Exception:  # noqa: BLE001  (unreadable: trained again)
        return False


def cross_fit_rows(settings, store: FeatureStore, train_rows: np.ndarray, part: int, run: Run):
    """The training rows of cross-fit part teacher `part` (all but its part) and the record its checkpoint keeps."""
    k = settings.dump.cross_fit
    if not 0 <= part < k:
        raise ValueError(f"cross-fit part {part}: dump.cross_fit is {k}, so parts are 0..{k - 1}")
    parts = part_of_rows(store, k, run.seed)
    return train_rows[parts[train_rows] != part], {"k": k, "part": part, "seed": run.seed,
                                                   "held_out": held_out_clips(store, parts, part)}


def describe(settings, s: Setup, history: list[dict], selection: dict, weight_average: dict | None) -> Checkpoint:
    """What the checkpoint says about the model: how to rebuild and feed it, and how it was trained."""
    job = s.job
    return Checkpoint(
        role=job.role, architecture=job.architecture, network=s.model_cfg.model_dump(), **trained_on(s.store),
        seed=s.run.seed, direction=job.direction.name if job.direction else None,
        teacher=s.teaching.record, distill=settings.distill.model_dump(by_alias=True) if s.teaching.record else None,
        train={**settings.train.model_dump(), "augment": settings.augment.model_dump()}, world_size=s.ranks.size,
        history=history, selection=selection, weight_average=weight_average, cross_fit=s.cross_fit,
        shaped_by=s.run_id)


def say_input_differences(source: dict, store: FeatureStore, job: Job) -> None:
    """A fine-tune normalises with its dataset's statistics (the AST recipe) and adapts to this run's frames; say
    so where the pretrained model was trained on other inputs."""
    if source.get("normalization") and source["normalization"].differs_from(store.normalization):
        print(f"{job}: fine-tuning a model trained on inputs normalised with {source['normalization']}; this run's "
              f"training clips have {store.normalization}, which training uses (the AST recipe fine-tunes on the "
              "target dataset's statistics)")
    if source.get("num_frames") and source["num_frames"] != store.num_frames:
        print(f"{job}: the pretrained model took {source['num_frames']} frames, features.target_frames is "
              f"{store.num_frames}: its position embeddings were adapted (cropped or interpolated in time)")


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, x: torch.Tensor, y: torch.Tensor,
               teacher_probs: torch.Tensor | None, lam: float, task: Task) -> torch.Tensor:
    """One optimizer step on a batch already on the device; returns (loss, gt loss, kd loss) without a sync."""
    with autocast(x.device):
        logits = model(x)
    loss, gt, kd = task.loss(logits.float(), y, teacher_probs, lam)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return torch.stack([loss, gt, kd]).detach()


def lr_factor(step: int, steps_per_epoch: int, cfg, epochs: int) -> float:
    """Linear warm-up over the first `warmup_steps` steps, then step decay by epoch (the AST/PSLA schedule) or a
    cosine from the warm-up's end to 0 after the last of `epochs` (train.schedule)."""
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "cosine":
        total = max(1, epochs * steps_per_epoch - cfg.warmup_steps)
        progress = min(1.0, max(0, step + 1 - cfg.warmup_steps) / total)
        return warmup * 0.5 * (1 + math.cos(math.pi * progress))
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
        print(f"store path: resident in {dev.type} memory ({resident_bytes(store, teaching.cache) / 1e9:.2f} GB)")
    else:
        rows = ZarrRows(store, teaching.cache, teaching.cache_rows)
        print(f"store path: loader ({cfg.num_workers} workers reading Zarr)")
    return BatchSource(rows, augmenter, cfg.num_workers, pin_memory=dev.type == "cuda", part=part)


def validate(s: Setup) -> float:
    """The headline metric on the validation clips, scored in the one process that validates (with train.bn_stats:
    recomputed, after measuring the BatchNorm statistics afresh: they then belong to exactly these weights)."""
    whole = replace(s.source, part=(0, 1))  # every clip
    if s.bn_rows is not None:
        recompute_batchnorm(s.model, whole, s.bn_rows, s.batch_size, s.store.normalization)
    logits = predict(s.model, whole, s.val_rows, s.batch_size, s.store.normalization)
    return s.task.score(logits, s.store.labels[s.val_rows])


BN_CLIPS = 2048  # training clips the statistics are measured on, at most


def recompute_batchnorm(model: nn.Module, source: BatchSource, rows: np.ndarray, batch_size: int,
                        normalization) -> None:
    """Every BatchNorm's running mean and variance measured on clean training clips with the current weights
    (torch.optim.swa_utils.update_bn: a cumulative average, not the momentum's lag over the last few batches of
    augmented clips). A model without BatchNorm is left as it is."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    from torch.optim.swa_utils import update_bn

    dev = next(model.parameters()).device
    inputs = (to_device(batch, normalization, dev)[0] for batch in source.batches(inference_plan(rows, batch_size)))
    was_training = model.training
    update_bn(inputs, model, dev)
    model.train(was_training)


def predict_held_out(name: str, run: Run, batch_size: int, num_workers: int,
                     source: BatchSource | None = None) -> None:
    """The model `name` of `run` as its checkpoint holds it on the run's test and validation clips ->
    held_out.write: the last step of a training stage (reading the clips as it trained on them, `source`: resident
    where they were) and of adopting a ready teacher."""
    path = layout.checkpoint(name, run)
    model, meta = load_checkpoint(path, device())
    store = FeatureStore(layout.store(meta.frontend_name), run.split)
    check_trained_on(meta, path, store)
    if source is None:
        source = BatchSource(ZarrRows(store), num_workers=num_workers)
    source = replace(source, augmenter=None)  # the clean clips
    clips = {}
    for split in held_out.SPLITS:
        rows = store.indices(split)
        clips[split] = held_out.Clips(np.array(store.clip_ids[rows].tolist()),
                                      predict(model, source, rows, batch_size, meta.input_normalization),
                                      store.labels[rows])
    about = {"model": meta.network["name"], "architecture": meta.architecture, "distill": meta.distill}
    held_out.write(layout.held_out_logits(name, run), held_out.HeldOut(list(store.classes), store.multi_label,
                                                                          about, **clips))


def log_epoch(live: Live, entry: dict) -> None:
    live.step = entry["epoch"]
    for key, value in entry.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()
