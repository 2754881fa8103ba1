"""Stage `dump_logits`: the frozen teacher's logits for every clip, written once to a sharded Zarr store.

Rows follow the feature store's clip order exactly (its clip ids are copied alongside), and the attributes record
which teacher checkpoints, which feature store, run and class list produced them; the student stage checks all
of it. Logits are stored raw (before tau), so tau stays a student-side parameter.

- dump.views = K > 0: also the teacher's logits on K augmented views of every clip, each drawn from a recorded
  seed (pipeline/views.py), all classes or, with dump.top_k, the top k logits and their classes.
- dump.extra_teachers: more checkpoints of the same run ("{run}" in a path is replaced by the run); the cache
  then holds the ensemble's mean logits (pipeline/ensemble.py).

Written block by block through ResumableStore: a killed dump resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from . import layout
from .checkpoint import check_trained_on, load_checkpoint, teacher_record
from .data import batches_of
from .ensemble import Ensemble
from .inference import device, predict_batches
from .provenance import code_version
from .stores import FeatureStore
from .views import ViewSampler, view_config, view_seeds
from .zarr_writer import ResumableStore, block_ranges


def dump_from_params(params: dict, run: str) -> None:
    cfg = params["dump"]
    dump_logits(cfg["batch_size"], cfg["clips_per_shard"], run=run, num_workers=cfg["num_workers"],
                views=cfg.get("views", 0), top_k=cfg.get("top_k", 0), view_cfg=view_config(params["train"], cfg),
                seed=params["seed"], extra_teachers=[p.format(run=run) for p in cfg.get("extra_teachers") or []])


def dump_logits(batch_size: int, clips_per_shard: int, run: str = "main", checkpoint: Path = None, out: Path = None,
                num_workers: int = 0, views: int = 0, top_k: int = 0, view_cfg: dict | None = None, seed: int = 0,
                extra_teachers: list[str] = ()) -> None:
    checkpoint = Path(checkpoint or layout.checkpoint("teacher", run))
    out = Path(out or layout.predictions(run))
    store = FeatureStore(layout.FEATURES, run)
    dev = device()
    members, teachers = [], []
    for path in [checkpoint, *map(Path, extra_teachers)]:
        model, ckpt = load_checkpoint(path, dev)
        check_trained_on(ckpt, path, store)
        members.append(model)
        teachers.append(teacher_record(path, ckpt))
    model = members[0] if len(members) == 1 else Ensemble(members).to(dev).eval()
    teacher = {**teachers[0], "ensemble": teachers if len(teachers) > 1 else None}

    n, c = len(store.clip_ids), len(store.classes)
    k_top = min(top_k, c) if top_k else 0
    view_attrs = {"count": views, "config": view_cfg, "top_k": k_top, "seed": seed} if views else None
    blocks = block_ranges(n, clips_per_shard)
    fingerprint = hashlib.sha256(json.dumps([[t["checkpoint_sha256"] for t in teachers], store.fingerprint, run,
                                             view_attrs]).encode()).hexdigest()
    writer = ResumableStore(out, fingerprint, len(blocks))
    group, fresh = writer.open()
    if fresh:
        group.create_array("logits", shape=(n, c), chunks=(1, c), shards=(clips_per_shard, c), dtype="float32")
        group.create_array("clip_ids", data=store.clip_ids.astype(np.dtypes.StringDType()))
        if views:
            group.create_array("view_seeds", data=view_seeds(store.clip_ids, views, seed), chunks=(clips_per_shard, views))
            group.create_array("view_params", shape=(n, views, 7), chunks=(clips_per_shard, views, 7), dtype="float32")
            for name, width, dtype in ((("view_top_logits", k_top, "float32"), ("view_top_classes", k_top, "int32"))
                                       if k_top else (("view_logits", c, "float32"),)):
                group.create_array(name, shape=(n, views, width), chunks=(1, views, width),
                                   shards=(clips_per_shard, views, width), dtype=dtype)
    sampler = None
    if views:
        sampler = ViewSampler(group["view_seeds"][:], view_cfg, store.num_frames, store.features.shape[2],
                              store.indices("train"))

    # one loader over every pending block (its workers start once): per batch the clean clips, then each view
    pending = writer.pending(group)
    batches, view_choice, owner = [], [], []
    for b in pending:
        for rows in batches_of(np.arange(*blocks[b]), batch_size, shuffle=False):
            for k in [None, *range(views)]:
                batches.append(rows)
                view_choice.append(None if k is None else np.full(len(rows), k))
                owner.append(b)
    collected = {b: {"clean": [], "views": [[] for _ in range(views)]} for b in pending}
    logits = predict_batches(model, store, batches, num_workers, sampler, view_choice)
    total = f"{n} clips" + (f" x (1 + {views} views)" if views else "")
    for i, batch_logits in enumerate(track(logits, total=len(batches), description=f"teacher logits ({total})")):
        b, choice = owner[i], view_choice[i]
        part = collected[b]
        # kept on the device until the block is written: one host sync per block, not one per batch
        (part["clean"] if choice is None else part["views"][int(choice[0])]).append(batch_logits)
        if i + 1 == len(batches) or owner[i + 1] != b:
            write_block(group, blocks[b], collected.pop(b), sampler, k_top)
            writer.mark_done(group, b)
    group.attrs.update({"classes": store.classes, "features_fingerprint": store.fingerprint,
                        "features": str(store.path), "run": run, "teacher": teacher, "views": view_attrs,
                        "multi_label": store.multi_label, "created_by": "cmkd dump_logits", "code": code_version()})
    writer.commit(group)


def write_block(group, block: tuple[int, int], part: dict, sampler: ViewSampler | None, k_top: int) -> None:
    start, end = block
    group["logits"][start:end] = torch.cat(part["clean"]).cpu().numpy()
    if sampler is None:
        return
    per_view = torch.stack([torch.cat(v) for v in part["views"]], dim=1).cpu()  # [clips, K, classes]
    rows = np.arange(start, end)
    group["view_params"][start:end] = np.stack(
        [sampler.params(rows, np.full(len(rows), k)) for k in range(sampler.count)], axis=1).astype(np.float32)
    if k_top:
        top = per_view.topk(k_top, dim=-1)
        group["view_top_logits"][start:end] = top.values.numpy()
        group["view_top_classes"][start:end] = top.indices.numpy().astype(np.int32)
    else:
        group["view_logits"][start:end] = per_view.numpy()
