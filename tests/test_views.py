"""Cached augmented views, teacher ensembles and online distillation.

The central check: the student's replayed input is bit-identical to the input the teacher saw at dump time."""
import numpy as np
import pytest
import torch

from pipeline import layout
from pipeline.data.augment import AugmentSettings, as_columns, mix, view_seeds
from pipeline.data.batches import Augmenter, BatchSpec, ZarrRows, assemble, to_device
from pipeline.models.checkpoint import load_checkpoint
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore

from .conftest import MAIN, cache_path, checkpoint, dump, path, settings, train

VIEWS = {"freq_mask": 24, "time_mask": 30, "mixup": 0.5, "mixup_alpha": 10.0, "time_shift": 10}


def dump_views(params, views=3, top_k=0, **augment):
    params["augment"].update(VIEWS, **augment)
    params["dump"].update(views=views, top_k=top_k)
    s = settings(params)
    train(s, "teacher", MAIN)
    dump(s, MAIN)
    return FeatureStore(layout.FEATURES), PredictionStore(cache_path())


def view_augmenter(store, cache):
    return Augmenter(AugmentSettings(**cache.views["config"]), store.num_frames, store.num_mel_bins,
                     store.indices("train"), cache.view_seeds, store.clip_frames)


@pytest.mark.parametrize("scale", ["window", "clip"])
def test_replayed_views_are_bit_identical_to_what_the_teacher_saw(in_workspace, scale):
    _, params = in_workspace
    store, cache = dump_views(params, mask_scale=scale)
    assert cache.views["config"] == {**VIEWS, "mask_scale": scale}
    augmenter = view_augmenter(store, cache)
    rows = np.arange(store.features.shape[0])
    for k in range(3):  # the parameters redrawn from the recorded seeds are the ones recorded at dump time
        np.testing.assert_array_equal(as_columns(augmenter.params(BatchSpec(rows, views=np.full(len(rows), k))))
                                      .astype(np.float32),
                                      cache.group["view_params"][:, k])
    params_k = cache.group["view_params"][:]
    assert (params_k[..., 1] < 1).any() and (params_k[..., 2] != 0).any() and (params_k[..., 4] > 0).any()

    teacher, _ = load_checkpoint(path("teacher"))
    # the dump's first batch (rows 0..15), view 2, as the dump built it and as the student's batches build it
    batch_rows = np.arange(16)
    at_dump = assemble(ZarrRows(store), BatchSpec(batch_rows, views=np.full(16, 2)), augmenter)
    student_rows = np.random.default_rng(1).permutation(batch_rows)  # the student's batch comes shuffled
    at_student = assemble(ZarrRows(store, cache), BatchSpec(student_rows, views=np.full(16, 2)),
                          view_augmenter(store, cache), teacher="views")
    cpu = torch.device("cpu")
    x_dump, _ = to_device(at_dump, store.normalization, cpu)
    x_student, y_student = to_device(at_student, store.normalization, cpu)
    assert torch.equal(x_dump, x_student)  # bit for bit
    assert not torch.equal(x_student, store.normalization(at_student["x"]))  # and it is augmented
    with torch.no_grad():
        assert torch.equal(teacher(x_student), at_student["teacher_logits"])  # the cached target is of that input
    # mixed labels follow the view's mixup weight and partner
    params_t = at_student["params"]
    w = params_t["weight"][:, None].float()
    partner = params_t["partner"]
    expected = w * at_student["y"] + (1 - w) * torch.from_numpy(store.labels[partner.numpy()].astype(np.float32))
    torch.testing.assert_close(y_student, expected)
    torch.testing.assert_close(mix(at_student["y"], at_student["y_partner"], params_t), expected)


def test_view_seeds_follow_the_clip_not_its_row():
    ids = np.array(["a", "b", "c"])
    seeds = view_seeds(ids, 4, seed=7)
    np.testing.assert_array_equal(view_seeds(ids[::-1], 4, seed=7), seeds[::-1])
    assert len(np.unique(seeds)) == 12 and not np.array_equal(view_seeds(ids, 4, seed=8), seeds)


def test_student_trains_on_replayed_views(in_workspace):
    _, params = in_workspace
    dump_views(params, views=2)
    params["augment"].update(freq_mask=0, time_mask=0, mixup=0.0)  # the views replay what the dump drew, whatever
    # this is
    assert train(settings(params), "student", MAIN)["train/kd_loss"] > 0
    ckpt = checkpoint("student")
    assert ckpt.teacher["views"]["count"] == 2 and ckpt.teacher["views"]["config"] == {**VIEWS, "mask_scale": "window"}


def test_top_k_views_keep_the_largest_logits(in_workspace):
    _, params = in_workspace
    store, cache = dump_views(params, views=2, top_k=2)
    assert "view_logits" not in cache.group and cache.group["view_top_logits"].shape == (64, 2, 2)
    teacher, _ = load_checkpoint(path("teacher"))
    item = assemble(ZarrRows(store, cache), BatchSpec(np.arange(16), views=np.full(16, 1)),
                    view_augmenter(store, cache), teacher="views")
    with torch.no_grad():
        full = teacher(to_device(item, store.normalization, torch.device("cpu"))[0])
    dense = item["teacher_logits"]
    top = full.topk(2, dim=1)
    torch.testing.assert_close(dense.gather(1, top.indices), top.values)
    assert ((dense == PredictionStore.TOP_K_FILL).sum(1) == len(store.classes) - 2).all()


def test_ensemble_teacher_caches_the_mean_logits(with_teacher, tmp_path):
    _, params = with_teacher
    first = tmp_path / "cnn_teacher.pt"
    path("teacher").rename(first)
    params["teacher"], params["student"] = "ast", "cnn"
    params["dump"]["extra_teachers"] = [str(first)]
    s = settings(params)
    train(s, "teacher", MAIN)
    dump(s, MAIN)
    cache, store = PredictionStore(cache_path()), FeatureStore(layout.FEATURES)
    assert [t["architecture"] for t in cache.teacher["ensemble"]] == ["ast", "cnn"]
    x = store.normalization(torch.from_numpy(store.features[:16]))
    with torch.no_grad():
        expected = (load_checkpoint(path("teacher", s=s))[0](x) + load_checkpoint(first)[0](x)) / 2
    torch.testing.assert_close(torch.from_numpy(cache.logits[:16]), expected)


def test_online_distillation_runs_the_teacher_in_the_loop(with_teacher):
    _, params = with_teacher
    params["distill"]["online"] = True
    assert train(settings(params), "student", MAIN)["train/kd_loss"] > 0
    ckpt = checkpoint("student")
    assert ckpt.teacher["online"] and ckpt.teacher["architecture"] == "cnn"
    assert ckpt.history[-1]["train/samples_per_s"] > 0
