"""One batch assembler over two row sources: the Zarr stores (loader) and the stores resident in device memory give
the very same batches, and so the very same trained model."""
import numpy as np
import pytest
import torch

from pipeline import layout
from pipeline.data import resident
from pipeline.data.augment import AugmentSettings
from pipeline.data.batches import Augmenter, BatchSource, ZarrRows, training_plan
from pipeline.data.resident import ResidentRows, use_resident
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore

from .conftest import MAIN, cache_path, dump, settings, stored, train

VIEWS = {"freq_mask": 24, "time_mask": 30, "mixup": 0.5, "mixup_alpha": 10.0, "time_shift": 10}


@pytest.mark.parametrize("views", [0, 2])
def test_resident_batches_equal_the_loaders(in_workspace, views):
    _, params = in_workspace
    params["augment"].update(VIEWS)
    params["dump"].update(views=views, top_k=2 if views else 0)
    s = settings(params)
    train(s, "teacher", MAIN)
    dump(s, MAIN)
    store, cache = FeatureStore(layout.FEATURES), PredictionStore(cache_path())
    rows = cache.check_matches(store, store.indices("train"))
    augmenter = Augmenter(AugmentSettings(**VIEWS), store.num_frames, store.num_mel_bins, store.indices("train"),
                          cache.view_seeds if views else None)
    plan = training_plan(np.random.default_rng(0), store.indices("train"), 8, views=views)
    assert len(plan) == len(store.indices("train")) // 8
    reads = "views" if views else "clean"
    held = BatchSource(ResidentRows(store, torch.device("cpu"), cache, rows), augmenter).batches(plan, reads)
    read = BatchSource(ZarrRows(store, cache, rows), augmenter, num_workers=1).batches(plan, reads)
    mixed = 0
    for a, b in zip(held, read, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key == "params":  # the draws, by name
                assert all(torch.equal(a[key][k].cpu(), b[key][k]) for k in a[key]), key
            else:
                assert torch.equal(a[key].cpu(), b[key]), key
        mixed += int((a["params"]["weight"] < 1).sum())
    assert mixed > 0 and ("partner_logits" in a) == (not views)


def test_student_trained_resident_equals_loader(with_teacher):
    _, params = with_teacher
    params["augment"].update(mixup=0.5)  # partners, their logits and mixed targets come from either source
    weights, validation = [], []
    for held in (False, True):
        params["train"]["resident"] = held
        train(settings(params), "student", MAIN)
        model_weights, _, ckpt = stored("student")
        weights.append(model_weights)
        validation.append([epoch["val/accuracy"] for epoch in ckpt.history])  # predicted from each source
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    assert validation[0] == validation[1]


def test_resident_choice(in_workspace, monkeypatch):
    store, cpu = FeatureStore(layout.FEATURES), torch.device("cpu")
    needed = resident.resident_bytes(store, None)
    assert 0 < needed < resident.available_bytes(cpu)
    assert use_resident("auto", store, None, cpu)  # a tiny store fits in RAM
    assert use_resident(True, store, None, cpu) and not use_resident(False, store, None, cpu)
    with pytest.raises(ValueError, match="train.resident must be auto, true or false"):
        use_resident("sometimes", store, None, cpu)
    # when the stores need more than half of what is available: the loader, or an error if resident was demanded
    monkeypatch.setattr(resident, "available_bytes", lambda device: 2 * needed - 1)
    assert not use_resident("auto", store, None, cpu)
    with pytest.raises(MemoryError, match=r"features\.zarr.*need .* GB and the cpu has"):
        use_resident(True, store, None, cpu)
    monkeypatch.setattr(resident, "available_bytes", lambda device: 2 * needed)
    assert use_resident("auto", store, None, cpu)
