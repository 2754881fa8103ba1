"""Stage `dump_logits`: the frozen teacher's logits for every clip, written once to a sharded Zarr store.

Rows follow the feature store's clip order exactly (its clip ids are copied alongside), and the attributes record
which teacher checkpoint, which feature store and which class list produced them; the student stage checks all
three. Logits are stored raw (before tau), so tau stays a student-side parameter. Written block by block through
ResumableStore: a killed dump resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from . import layout
from .checkpoint import check_trained_on, file_sha256, load_checkpoint
from .data import batches_of
from .inference import device, predict_batches
from .provenance import code_version
from .stores import FeatureStore
from .zarr_writer import ResumableStore, block_ranges


def dump_logits(batch_size: int, clips_per_shard: int, run: str = "main", checkpoint: Path = None, out: Path = None,
                num_workers: int = 0) -> None:
    checkpoint = Path(checkpoint or layout.checkpoint("teacher", run))
    out = Path(out or layout.predictions(run))
    store = FeatureStore(layout.FEATURES, run)
    dev = device()
    model, ckpt = load_checkpoint(checkpoint, dev)
    check_trained_on(ckpt, checkpoint, store)

    teacher = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
               "architecture": ckpt["architecture"], "model_config": ckpt["model_config"]}
    n, c = len(store.clip_ids), len(store.classes)
    blocks = block_ranges(n, clips_per_shard)
    fingerprint = hashlib.sha256(json.dumps([teacher["checkpoint_sha256"], store.fingerprint, run]).encode()).hexdigest()
    writer = ResumableStore(out, fingerprint, len(blocks))
    group, fresh = writer.open()
    if fresh:
        group.create_array("logits", shape=(n, c), chunks=(1, c), shards=(clips_per_shard, c), dtype="float32")
        group.create_array("clip_ids", data=store.clip_ids.astype(np.dtypes.StringDType()))
    # one loader over every pending block (its workers start once); a block is written as soon as it is complete
    pending = writer.pending(group)
    batches, owner = [], []
    for b in pending:
        for rows in batches_of(np.arange(*blocks[b]), batch_size, shuffle=False):
            batches.append(rows)
            owner.append(b)
    done_batches = {b: [] for b in pending}
    logits = predict_batches(model, store, batches, num_workers)
    for i, batch_logits in enumerate(track(logits, total=len(batches), description=f"teacher logits ({n} clips)")):
        b = owner[i]
        done_batches[b].append(batch_logits)
        if i + 1 == len(batches) or owner[i + 1] != b:
            start, end = blocks[b]
            group["logits"][start:end] = torch.cat(done_batches.pop(b)).cpu().numpy()
            writer.mark_done(group, b)
    group.attrs.update({"classes": store.classes, "features_fingerprint": store.fingerprint,
                        "features": str(store.path), "run": run, "teacher": teacher, "multi_label": store.multi_label,
                        "created_by": "cmkd dump_logits", "code": code_version()})
    writer.commit(group)
