"""Cached augmented views, teacher ensembles and online distillation.

The central check: the student's replayed input is bit-identical to the input the teacher saw at dump time."""
import numpy as np
import pytest
import torch

from pipeline import layout
from pipeline.checkpoint import load_checkpoint
from pipeline.data import BatchDataset
from pipeline.dump import dump_logits
from pipeline.stores import FeatureStore, PredictionStore
from pipeline.train import train
from pipeline.views import augmented_input, view_seeds

VIEWS = {"freq_mask": 24, "time_mask": 30, "mixup": 0.5, "mixup_alpha": 10.0, "time_shift": 10}


def dump_views(params, views=3, top_k=0, batch_size=16):
    train("teacher", params)
    dump_logits(batch_size, params["dump"]["clips_per_shard"], views=views, top_k=top_k, view_cfg=VIEWS, seed=0)
    return FeatureStore(layout.FEATURES), PredictionStore(layout.predictions("main"))


def test_replayed_views_are_bit_identical_to_what_the_teacher_saw(in_workspace):
    _, params = in_workspace
    store, cache = dump_views(params)
    sampler = cache.view_sampler(store)
    rows = np.arange(store.features.shape[0])
    for k in range(3):  # the parameters redrawn from the recorded seeds are the ones recorded at dump time
        np.testing.assert_array_equal(sampler.params(rows, np.full(len(rows), k)).astype(np.float32),
                                      cache.group["view_params"][:, k])
    params_k = cache.group["view_params"][:]
    assert (params_k[..., 1] < 1).any() and (params_k[..., 2] != 0).any() and (params_k[..., 4] > 0).any()

    teacher, _ = load_checkpoint(layout.checkpoint("teacher", "main"))
    # the dump's first batch (rows 0..15), view 2, as the dump built it and as the student's loader builds it
    batch_rows = np.arange(16)
    at_dump = BatchDataset(store, [batch_rows], views=sampler, view_choice=[np.full(16, 2)])[0]
    student_rows = np.random.default_rng(1).permutation(batch_rows)  # the student's batch comes shuffled
    at_student = BatchDataset(store, [student_rows], cache, views=cache.view_sampler(store),
                              view_choice=[np.full(16, 2)])[0]
    x_dump = augmented_input(at_dump, store.normalize, torch.device("cpu"))
    x_student = augmented_input(at_student, store.normalize, torch.device("cpu"))
    assert torch.equal(x_dump, x_student)  # bit for bit
    assert not torch.equal(x_student, store.normalize(at_student["x"]))  # and it is augmented
    with torch.no_grad():
        assert torch.equal(teacher(x_student), at_student["teacher_logits"])  # the cached target is of that input
    # mixed labels follow the view's mixup weight and partner
    params_t = at_student["view_params"]
    w = params_t[:, 1:2].float()
    partner = params_t[:, 0].long()
    expected = w * at_student["y"] + (1 - w) * torch.from_numpy(store.labels[partner.numpy()].astype(np.float32))
    from pipeline.views import mix_labels
    torch.testing.assert_close(mix_labels(at_student["y"], at_student["y_partner"], params_t), expected)


def test_view_seeds_follow_the_clip_not_its_row():
    ids = np.array(["a", "b", "c"])
    seeds = view_seeds(ids, 4, seed=7)
    np.testing.assert_array_equal(view_seeds(ids[::-1], 4, seed=7), seeds[::-1])
    assert len(np.unique(seeds)) == 12 and not np.array_equal(view_seeds(ids, 4, seed=8), seeds)


def test_student_trains_on_replayed_views(in_workspace):
    _, params = in_workspace
    dump_views(params, views=2)
    assert train("student", params)["train_kd_loss"] > 0
    ckpt = torch.load(layout.checkpoint("student", "main"), weights_only=True)
    assert ckpt["teacher"]["views"]["count"] == 2 and ckpt["teacher"]["views"]["config"] == VIEWS


def test_top_k_views_keep_the_largest_logits(in_workspace):
    _, params = in_workspace
    store, cache = dump_views(params, views=2, top_k=2)
    assert "view_logits" not in cache.group and cache.group["view_top_logits"].shape == (64, 2, 2)
    teacher, _ = load_checkpoint(layout.checkpoint("teacher", "main"))
    item = BatchDataset(store, [np.arange(16)], cache, views=cache.view_sampler(store), view_choice=[np.full(16, 1)])[0]
    with torch.no_grad():
        full = teacher(augmented_input(item, store.normalize, torch.device("cpu")))
    dense = item["teacher_logits"]
    top = full.topk(2, dim=1)
    torch.testing.assert_close(dense.gather(1, top.indices), top.values)
    assert ((dense == PredictionStore.TOP_K_FILL).sum(1) == len(store.classes) - 2).all()


def test_ensemble_teacher_caches_the_mean_logits(in_workspace, tmp_path):
    _, params = in_workspace
    train("teacher", params)
    first = tmp_path / "cnn_teacher.pt"
    layout.checkpoint("teacher", "main").rename(first)
    params["teacher"] = "ast"
    train("teacher", params)
    dump_logits(16, 16, extra_teachers=[str(first)])
    cache, store = PredictionStore(layout.predictions("main")), FeatureStore(layout.FEATURES)
    assert [t["architecture"] for t in cache.teacher["ensemble"]] == ["ast", "cnn"]
    x = store.normalize(torch.from_numpy(store.features[:16]))
    with torch.no_grad():
        expected = (load_checkpoint(layout.checkpoint("teacher", "main"))[0](x) + load_checkpoint(first)[0](x)) / 2
    torch.testing.assert_close(torch.from_numpy(cache.logits[:16]), expected)


def test_online_distillation_runs_the_teacher_in_the_loop(in_workspace):
    _, params = in_workspace
    train("teacher", params)
    params["distill"]["online"] = True
    assert train("student", params)["train_kd_loss"] > 0
    ckpt = torch.load(layout.checkpoint("student", "main"), weights_only=True)
    assert ckpt["teacher"]["online"] and ckpt["teacher"]["architecture"] == "cnn"
    assert ckpt["history"][-1]["train_samples_per_s"] > 0
