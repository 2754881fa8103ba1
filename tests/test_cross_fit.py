"""Cross-fitted teacher predictions (dump.cross_fit): every training clip's cached target comes from a teacher that
never trained on it, checked clip by clip against the teachers' own records and outputs."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline import layout
from pipeline.audit import inspect_predictions
from pipeline.data.batches import BatchSource, ZarrRows
from pipeline.errors import ParamsError
from pipeline.evaluation.inference import predict
from pipeline.models.checkpoint import load_checkpoint
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore
from pipeline.stores.schema import StoreMismatchError
from pipeline.training import jobs
from pipeline.training.cross_fit import MEAN_OF_PARTS, part_of_rows
from pipeline.training.loop import train as train_job

from .conftest import MAIN, cache_path, dump, settings

K = 3


def with_cross_fit(params: dict, k: int = K) -> dict:
    params["dump"].update(cross_fit=k)
    return params


def stand_in_store(labels: np.ndarray, groups: np.ndarray, split: np.ndarray):
    """The few FeatureStore fields the split reads, for splits of shapes the tiny dataset does not have."""
    return SimpleNamespace(labels=labels, groups=groups, clip_ids=np.array([f"c{i}" for i in range(len(labels))]),
                           run="main", indices=lambda name: np.flatnonzero(split == name))


def test_parts_are_stratified_deterministic_and_keep_groups_whole():
    rng = np.random.default_rng(0)
    n, classes = 300, 5
    y = rng.integers(0, classes, n)
    labels = np.eye(classes, dtype=np.uint8)[y]
    split = np.where(rng.random(n) < 0.8, "train", "test")
    store = stand_in_store(labels, np.full(n, "", dtype=object), split)
    parts = part_of_rows(store, 4, seed=7)
    np.testing.assert_array_equal(parts, part_of_rows(store, 4, seed=7))  # deterministic
    assert not np.array_equal(parts, part_of_rows(store, 4, seed=8))       # and seeded
    assert (parts[split != "train"] == MEAN_OF_PARTS).all() and (parts[split == "train"] >= 0).all()
    for c in range(classes):  # stratified: every class spread over the parts to within one clip
        counts = np.bincount(parts[(split == "train") & (y == c)], minlength=4)
        assert counts.max() - counts.min() <= 1, (c, counts)

    groups = np.array([f"g{i // 5}" for i in range(n)], dtype=object)  # 5 clips per recording
    grouped = part_of_rows(stand_in_store(labels, groups, split), 4, seed=7)
    for g in set(groups[split == "train"]):
        assert len(set(grouped[(groups == g) & (split == "train")])) == 1, g  # a recording never spans parts
    assert len(set(grouped[split == "train"])) == 4


def part_path(part: int):
    return layout.checkpoint(layout.part_model("cnn", part), MAIN)


def test_cross_fitted_targets_never_come_from_a_teacher_that_trained_on_the_clip(in_workspace):
    _, params = in_workspace
    s = settings(with_cross_fit(params))
    for part in range(K):
        train_job(s, jobs.teacher_part("cnn", part), MAIN)
    dump(s, MAIN)

    store, cache = FeatureStore(layout.FEATURES, MAIN.split), PredictionStore(cache_path())
    parts = cache.group["teacher_part"][:]
    np.testing.assert_array_equal(parts, part_of_rows(store, K, MAIN.seed))
    train_rows = store.indices("train")
    source = BatchSource(ZarrRows(store), None, 0)
    outputs, trained_on = [], []
    for part in range(K):
        model, ckpt = load_checkpoint(part_path(part))
        outputs.append(predict(model, source, np.arange(len(store.clip_ids)), 16, store.normalization))
        held_out = set(ckpt.cross_fit["held_out"])
        trained_on.append({c for c in map(str, store.clip_ids[train_rows]) if c not in held_out})
    for row, clip in enumerate(map(str, store.clip_ids)):  # clip by clip
        if store.split[row] == "train":
            j = parts[row]
            assert 0 <= j < K and clip not in trained_on[j]
            assert all(clip in trained_on[i] for i in range(K) if i != j)  # every other teacher did train on it
            np.testing.assert_allclose(cache.logits[row], outputs[j][row], atol=1e-5)
        else:
            assert parts[row] == MEAN_OF_PARTS
            np.testing.assert_allclose(cache.logits[row], np.mean([o[row] for o in outputs], axis=0), atol=1e-5)
    assert cache.teacher["cross_fit"]["k"] == K and len(cache.teacher["cross_fit"]["parts"]) == K

    report = inspect_predictions(cache_path())["cross-fit"]
    assert all(report[f"part {j}"]["every clip held out by its teacher"] for j in range(K))
    assert sum(report[f"part {j}"]["clips"] for j in range(K)) == len(train_rows)

    # a part teacher in another part's place is refused, naming it
    a, b = part_path(0), part_path(1)
    a.rename(a.with_suffix(".swap")), b.rename(a), a.with_suffix(".swap").rename(b)
    with pytest.raises(StoreMismatchError, match="part0/seed0/checkpoint.pt: not the teacher of cross-fit part 0"):
        dump(s, MAIN)
    # so is a set of teachers split with another seed: their held-out clips are not this split's parts
    b.rename(a.with_suffix(".swap")), a.rename(b), a.with_suffix(".swap").rename(a)
    ckpt = torch.load(a, weights_only=True)
    ckpt["meta"]["cross_fit"]["held_out"] = ckpt["meta"]["cross_fit"]["held_out"][1:]
    torch.save(ckpt, a)
    with pytest.raises(StoreMismatchError, match="its held-out clips are not part 0"):
        dump(s, MAIN)


def test_cross_fit_settings_are_checked(repo_params):
    p = with_cross_fit(repo_params, 5)
    settings(p)
    p["dump"]["cross_fit_parts"] = [0, 1, 2]  # a key of before: the message says where it went
    with pytest.raises(ParamsError, match="cross_fit_parts: no longer a key .stage train trains"):
        settings(p)
    del p["dump"]["cross_fit_parts"]
    p = with_cross_fit(repo_params, 2)
    p["distill"]["online"] = True
    with pytest.raises(ParamsError, match="dump.cross_fit needs the cache"):
        settings(p)
