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
from rich.progress import track

from . import layout
from .checkpoint import check_trained_on, file_sha256, load_checkpoint
from .inference import device, predict
from .stores import FeatureStore
from .zarr_writer import ResumableStore, block_ranges


def dump_logits(batch_size: int, clips_per_shard: int, checkpoint: Path = None, out: Path = None,
                num_workers: int = 0) -> None:
    checkpoint = Path(checkpoint or layout.checkpoint("teacher"))
    out = Path(out or layout.PREDICTIONS)
    store = FeatureStore(layout.FEATURES)
    model, ckpt = load_checkpoint(checkpoint, device())
    check_trained_on(ckpt, checkpoint, store)

    teacher = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
               "architecture": ckpt["architecture"], "model_config": ckpt["model_config"]}
    n, c = len(store.clip_ids), len(store.classes)
    blocks = block_ranges(n, clips_per_shard)
    fingerprint = hashlib.sha256(json.dumps([teacher["checkpoint_sha256"], store.fingerprint]).encode()).hexdigest()
    writer = ResumableStore(out, fingerprint, len(blocks))
    group, fresh = writer.open()
    if fresh:
        group.create_array("logits", shape=(n, c), chunks=(1, c), shards=(clips_per_shard, c), dtype="float32")
        group.create_array("clip_ids", data=store.clip_ids.astype(np.dtypes.StringDType()))
    for b in track(writer.pending(group), description=f"teacher logits ({n} clips)"):
        start, end = blocks[b]
        group["logits"][start:end] = predict(model, store, np.arange(start, end), batch_size, num_workers)
        writer.mark_done(group, b)
    group.attrs.update({"classes": store.classes, "features_fingerprint": store.fingerprint,
                        "features": str(store.path), "teacher": teacher, "multi_label": store.multi_label,
                        "created_by": "cmkd dump_logits"})
    writer.commit(group)
