"""Stage `dump_logits@<direction>`: the direction's frozen teacher's logits for every clip, written once to a sharded
Zarr store.

Rows follow the feature store's clip order exactly (its clip ids are copied alongside), and the attributes record
which teacher checkpoints, which feature store, run and class list produced them; the student stage checks all
of it. Logits are stored raw (before tau), so tau stays a student-side parameter. The store's layout is
pipeline/stores/predictions.py's.

- dump.views = K > 0: also the teacher's logits on K augmented views of every clip, each drawn from a recorded
  seed with the training augmentation (pipeline/data/augment.py), all classes or, with dump.top_k, the top k
  logits and their classes.
- dump.extra_teachers: more checkpoints of the same run ("{run}" in a path is replaced by the run's split); the
  cache then holds the ensemble's mean logits (pipeline/models/ensemble.py).
- dump.cross_fit = k > 1: each training clip's logits from the one of k part teachers that never trained on it,
  every other clip's from their mean; `teacher_part` records which (pipeline/training/cross_fit.py).

Written block by block through ResumableStore: a killed dump resumes where it stopped. Under torchrun
(distributed.nproc_per_node > 1) each rank computes every N-th pending block and writes its shards into the same
store (blocks never share a shard); the main process creates the store and commits it once every rank is done,
so the result is the one-process dump's.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from .. import layout
from ..data.augment import FIELDS, as_columns, view_seeds
from ..data.batches import Augmenter, BatchSource, BatchSpec, ZarrRows
from ..data.resident import ResidentRows, use_resident
from ..evaluation.inference import predict_batches
from ..models.checkpoint import check_trained_on, load_checkpoint, teacher_record
from ..models.ensemble import Ensemble
from ..provenance import code_version
from ..runs import Run
from ..runtime import device, world
from ..stores import predictions
from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from ..stores.schema import read_many
from ..stores.writer import ResumableStore, block_ranges
from ..task import task_for
from ..training.cross_fit import PartTeachers, check_part_teacher, part_of_rows, pick_part
from .teacher import check_pinned, teacher_checkpoints


def dump(settings, direction: str, run: Run, pinned: bool = False) -> None:
    """data/runs/<split>/seed<k>/<direction>/teacher_predictions.zarr from the direction's teacher (and extra
    teachers, or its cross-fit part teachers) in that run; `pinned`: only from the checkpoints stage pick_teacher
    pinned (pipeline/cache/teacher.py)."""
    cfg = settings.dump
    if cfg.source == "import":  # predictions made elsewhere (pipeline/cache/imported.py), matched by clip id
        from .imported import import_predictions

        store = FeatureStore(layout.FEATURES, run.split)  # any store of the dataset holds its clips
        write_reports(direction, run, store, import_predictions(settings, direction, run, store))
        return
    ranks, dev = world(settings.distributed.backend), device()
    store = teacher_store(teacher_checkpoints(settings, direction, run), run)
    parts = part_of_rows(store, cfg.cross_fit, run.seed) if cfg.cross_fit else None
    if pinned:
        check_pinned(direction, run, teacher_checkpoints(settings, direction, run))
    model, teacher, teachers, normalization = teachers_of(settings, direction, run, store, parts, dev)
    k_top = min(cfg.top_k, len(store.classes)) if cfg.top_k else 0
    view_attrs = {"count": cfg.views, "config": settings.augment.as_dict(), "top_k": k_top, "seed": run.seed} \
        if cfg.views else None
    blocks = block_ranges(len(store.clip_ids), cfg.clips_per_shard)
    made_of = [[t["checkpoint_sha256"] for t in teachers], store.group.attrs.get("content_sha256", store.fingerprint),
               run.split, view_attrs, cfg.cross_fit, cfg.clips_per_shard, code_version()["source_sha256"]]
    fingerprint = hashlib.sha256(json.dumps(made_of).encode()).hexdigest()
    if already_dumped(layout.predictions(direction, run), fingerprint):  # a stage re-run for another seed, say
        print(f"{direction} ({run}): kept {layout.predictions(direction, run)}, dumped by the same code from the "
              "same teacher and store")
        return
    writer = ResumableStore(layout.predictions(direction, run), fingerprint, len(blocks))
    group = open_on_every_rank(writer, ranks, store, cfg, k_top, parts, run)
    augmenter = Augmenter(settings.augment, store.num_frames, store.num_mel_bins, store.indices("train"),
                          group["view_seeds"][:], store.clip_frames) if cfg.views else None
    rows = ResidentRows(store, dev) if use_resident("auto", store, None, dev) else ZarrRows(store)  # one read of it
    source = BatchSource(rows, augmenter, cfg.num_workers, pin_memory=dev.type == "cuda")
    pending = writer.pending(group)[ranks.rank :: ranks.size]  # this rank's blocks
    ranks.barrier()  # every rank has read which blocks are pending before any marks one done
    with writer.writing():
        predict_blocks(writer, group, source, model, normalization, blocks, pending, cfg, parts, augmenter, k_top,
                       show=ranks.is_main)
    ranks.barrier()
    if not ranks.is_main:
        return
    predictions.describe(group, store, run, direction, teacher, view_attrs,
                         cross_fit={"k": cfg.cross_fit, "seed": run.seed} if parts is not None else None,
                         dump_fingerprint=fingerprint)
    writer.commit(group)
    write_reports(direction, run, store, {"matched": len(store.clip_ids),
                                          "missing (in the feature store, not in the file)": {}})


def teacher_store(paths: list[Path], run: Run) -> FeatureStore:
    """The feature store the teacher at `paths` reads (that of the front-end its checkpoint records), seen through
    `run`."""
    from ..models.checkpoint import read_checkpoint

    if not paths[0].is_file():
        raise FileNotFoundError(f"{paths[0]}: the teacher is not trained yet")
    return FeatureStore(layout.store(read_checkpoint(paths[0])[2].frontend_name), run.split)


def already_dumped(path: Path, fingerprint: str) -> bool:
    """Whether the cache at `path` was dumped by exactly this dump (teachers, store, views, code), with its reports."""
    import zarr

    if not path.is_dir():
        return False
    try:
        return zarr.open_group(path, mode="r").attrs.get("dump_fingerprint") == fingerprint
    except Exception:  # noqa: BLE001  (unreadable: dumped again)
        return False


def teachers_of(settings, direction: str, run: Run, store: FeatureStore, parts: np.ndarray | None,
                dev: torch.device):
    """The direction's teacher model (with dump.extra_teachers an Ensemble; with cross-fit its part teachers),
    its record for the cache, each member's record, and their shared input normalisation."""
    if parts is not None:
        return load_part_teachers(settings.direction(direction).teacher, run, store, parts, dev)
    paths = [*teacher_checkpoints(settings, direction, run),
             *(Path(p.format(run=run.split)) for p in settings.dump.extra_teachers)]
    return load_teachers(paths, store, dev)


def open_on_every_rank(writer: ResumableStore, ranks, store: FeatureStore, cfg, k_top: int,
                       parts: np.ndarray | None, run: Run):
    """The partial store: created (or resumed) by the main process, then opened by the others."""
    if ranks.is_main:
        group, fresh = writer.open()
        if fresh:
            predictions.create_arrays(group, store.clip_ids, len(store.classes), cfg.clips_per_shard, cfg.views,
                                      k_top, view_seeds(store.clip_ids, cfg.views, run.seed) if cfg.views else None,
                                      FIELDS)
            if parts is not None:
                group.create_array("teacher_part", data=parts, chunks=(cfg.clips_per_shard,))
    ranks.barrier()  # the other ranks open the store the main process made
    if not ranks.is_main:
        group, _ = writer.open()
    return group


def predict_blocks(writer: ResumableStore, group, source: BatchSource, model, normalization, blocks: list,
                   pending: list[int], cfg, parts: np.ndarray | None, augmenter: Augmenter | None, k_top: int,
                   show: bool = True) -> None:
    """The teacher over every pending block through one loader (its workers start once): per batch the clean clips,
    then each view; each block written and marked done as soon as its last batch is predicted."""
    views = cfg.views
    specs, owner = [], []
    for b in pending:
        for start in range(blocks[b][0], blocks[b][1], cfg.batch_size):
            rows = np.arange(start, min(start + cfg.batch_size, blocks[b][1]))
            specs += [BatchSpec(rows)] + [BatchSpec(rows, views=np.full(len(rows), k)) for k in range(views)]
            owner += [b] * (1 + views)
    collected = {b: [[] for _ in range(1 + views)] for b in pending}  # per block: clean, then view 0..K-1
    total = f"{blocks[-1][1]} clips" + (f" x (1 + {views} views)" if views else "")
    logits = predict_batches(model, source, specs, normalization)
    for i, batch_logits in enumerate(track(logits, total=len(specs), description=f"teacher logits ({total})",
                                           disable=not show)):
        b, spec = owner[i], specs[i]
        if parts is not None:  # [clips, k, classes] -> each clip's own part teacher, or their mean
            batch_logits = pick_part(batch_logits, parts[spec.rows])
        # kept on the device until the block is written: one host sync per block, not one per batch
        collected[b][0 if spec.views is None else 1 + int(spec.views[0])].append(batch_logits)
        if i + 1 == len(specs) or owner[i + 1] != b:
            write_block(group, blocks[b], collected.pop(b), augmenter, k_top)
            writer.mark_done(group, b)


def write_reports(direction: str, run: Run, store: FeatureStore, coverage: dict) -> None:
    """results/.../<direction>/targets.json (split_statistics of the committed cache) and coverage.json."""
    cache = PredictionStore(layout.predictions(direction, run))
    cache_rows = cache.check_matches(store, missing="gt_only")
    path = layout.target_statistics(direction, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a cache of up to AUDITED_CLIPS clips is read whole at once (its per-clip chunks cost a decode each)
    logits = cache.logits[:] if cache.logits.shape[0] <= AUDITED_CLIPS else cache.logits
    path.write_text(json.dumps(split_statistics(logits, store, cache_rows), indent=1) + "\n")
    layout.coverage(direction, run).write_text(json.dumps(coverage, indent=1) + "\n")


AUDITED_CLIPS = 50_000  # a split's statistics read at most this many of its clips (AudioSet's 20,371 test clips all)


def audited(rows: np.ndarray, cap: int = AUDITED_CLIPS) -> np.ndarray:
    """`rows`, or a seeded sample of `cap` of them in order: what the statistics of a split read, so that their memory
    stays bounded as the store grows (AudioSet's 2 million clips x 527 classes are 4.2 GB of logits)."""
    if len(rows) <= cap:
        return rows
    return np.sort(np.random.default_rng(0).choice(rows, cap, replace=False))


def split_statistics(logits, store: FeatureStore, cache_rows: np.ndarray) -> dict:
    """Per split, over its cached clips (a seeded sample of AUDITED_CLIPS of a larger split, said so): the teacher's
    headline metric (pipeline/task) from the cached `logits` (a Zarr array or a NumPy one, [cache rows, classes]) and
    its targets' statistics at tau = 1. Training clips the teacher trained on (no cross-fit) score far above
    held-out ones: that gap is what the student is handed back as targets."""
    out = {}
    task = task_for(store.multi_label)
    for split in ("train", "val", "test"):
        rows = np.flatnonzero((store.split == split) & (cache_rows >= 0))
        if len(rows):
            kept = audited(rows)
            z, labels = read_many(logits, cache_rows[kept]), store.labels[kept]
            probs = task.teacher_probs(torch.from_numpy(z), 1.0).numpy()
            sample = {"sampled clips": int(len(kept))} if len(kept) < len(rows) else {}
            out[split] = {"clips": int(len(rows)), **sample, task.headline: task.score(z, labels),
                          **task.target_statistics(probs, labels)}
    return out


def load_teachers(paths: list[Path], store: FeatureStore, dev: torch.device):
    """The teacher model (an Ensemble of several), its record for the cache, each member's record, and the input
    normalisation they share."""
    members, records, metas = [], [], []
    for path in paths:
        model, meta = load_checkpoint(path, dev)
        check_trained_on(meta, path, store)
        members.append(model)
        records.append(teacher_record(path, meta))
        metas.append(meta)
    model = members[0] if len(members) == 1 else Ensemble(members).to(dev).eval()
    return model, {**records[0], "ensemble": records if len(records) > 1 else None}, records, \
        shared_normalization(metas, paths)


def shared_normalization(metas: list, paths: list[Path]):
    """The input normalisation every member was trained with (one batch feeds them all)."""
    if len({meta.input_normalization for meta in metas}) > 1:
        raise ValueError(f"teachers {', '.join(map(str, paths))} were trained on differently normalised inputs; "
                         "an ensemble (or cross-fit) runs them on one batch")
    return metas[0].input_normalization


def load_part_teachers(arch: str, run: Run, store: FeatureStore, parts: np.ndarray, dev: torch.device):
    """The k cross-fit teachers of `arch` (each checked to hold out exactly its part), their record, each one's
    record and their shared input normalisation."""
    members, records, metas, paths = [], [], [], []
    for j in range(int(parts.max()) + 1):
        path = layout.checkpoint(layout.part_model(arch, j), run)
        if not path.exists():
            raise FileNotFoundError(f"{path}: cross-fit teacher {j} not found (stage train trains it, with "
                                    "dump.cross_fit set)")
        member, meta = load_checkpoint(path, dev)
        check_trained_on(meta, path, store)
        check_part_teacher(meta, path, store, parts, j)
        members.append(member)
        records.append({**teacher_record(path, meta), "part": j})
        metas.append(meta)
        paths.append(path)
    record = {**records[0], "ensemble": None, "cross_fit": {"k": len(records), "seed": run.seed, "parts": records}}
    return PartTeachers(members).to(dev).eval(), record, records, shared_normalization(metas, paths)


def write_block(group, block: tuple[int, int], parts: list[list[torch.Tensor]], augmenter: Augmenter | None,
                k_top: int) -> None:
    """One block's logits (parts[0]: the clean clips', parts[1 + k]: view k's) into the store."""
    start, end = block
    logits = torch.cat(parts[0]).cpu().numpy()
    if augmenter is None:
        return predictions.write_block(group, start, logits)
    per_view = torch.stack([torch.cat(v) for v in parts[1:]], dim=1).cpu().numpy()  # [clips, K, classes]
    rows = np.arange(start, end)
    params = np.stack([as_columns(augmenter.params(BatchSpec(rows, views=np.full(len(rows), k))))
                       for k in range(len(parts) - 1)], axis=1)
    predictions.write_block(group, start, logits, per_view, params, k_top)
