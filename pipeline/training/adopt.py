"""A ready teacher: a model that already predicts this dataset's classes is used as is instead of trained.

When `models.<arch>.pretrained` names a cmkd checkpoint (one `cmkd convert` wrote of AudioSet's AST, say) whose
classes are exactly the feature store's, and the architecture is only ever a teacher here (no listed direction
uses it as a baseline, which must be trained on these labels to be a fair comparison), stage train@<arch> saves it
as the run's model without training (and its held-out logits): its own input normalisation, and the sha256 of the
file it came from. Under torchrun the main process writes it while the others wait.
"""
from __future__ import annotations

import json

from .. import layout
from ..models import build_model, frontend_of
from ..models.checkpoint import Checkpoint, file_sha256, save_checkpoint, trained_on
from ..models.pretrained import load_pretrained, read_state_dict
from ..runs import Run
from ..runtime import world
from ..stores.features import FeatureStore
from .loop import predict_held_out


def only_a_teacher(settings, arch: str) -> bool:
    return all(direction.teacher == arch for direction in settings.all_directions())


def adopt_if_ready(settings, arch: str, run: Run) -> bool:
    """Save models.<arch>.pretrained as the run's model of `arch` if it is a ready teacher; whether it was."""
    cfg = settings.models[arch]
    if not cfg.pretrained or not only_a_teacher(settings, arch):
        return False
    store = FeatureStore(layout.store(frontend_of(cfg.name)), run.split)
    _, meta = read_state_dict(cfg.pretrained)  # the classes are read without building the model
    if "checkpoint" not in meta or meta["checkpoint"].classes != list(store.classes):
        return False
    model = build_model(cfg, len(store.classes), store.num_frames, store.num_mel_bins)
    loaded = load_pretrained(model, cfg.pretrained)
    if loaded["initialised"]:  # it does not fit this network whole: fine-tune it instead
        return False
    ranks = world(settings.distributed.backend)
    if ranks.is_main:
        save_adopted(settings, arch, run, model, loaded["source"]["checkpoint"], store)
        predict_held_out(layout.labels_model(arch), run, settings.train.batch_size, settings.train.num_workers)
    ranks.barrier()  # the others wait until the checkpoint is written
    return True


def save_adopted(settings, arch: str, run: Run, model, source: Checkpoint, store: FeatureStore) -> None:
    cfg = settings.models[arch]
    adopted = {"path": str(cfg.pretrained), "sha256": file_sha256(cfg.pretrained), "from": source.source}
    print(f"{arch}: adopted {cfg.pretrained} as is (it predicts this dataset's {len(store.classes)} classes; sha256 "
          f"{adopted['sha256'][:12]}), normalised as it was trained: {source.input_normalization} (this run's "
          f"training clips: {store.normalization})")
    save_checkpoint(layout.checkpoint(layout.labels_model(arch), run), model, Checkpoint(
        role="labels", architecture=arch, network=cfg.model_dump(),
        **trained_on(store, normalization=source.input_normalization), seed=run.seed,
        selection={"select": "adopted", "epoch": None}, adopted=adopted))
    live = layout.live_dir(layout.labels_model(arch), run)  # the stage's declared curves: none, it did not train
    (live / "plots").mkdir(parents=True, exist_ok=True)
    (live / "metrics.json").write_text(json.dumps({"adopted": adopted["path"], "sha256": adopted["sha256"]}) + "\n")
