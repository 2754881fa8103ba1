"""train.resident: the stores held in device memory give the very batches, and so the very model, the loader does."""
import numpy as np
import pytest
import torch

from pipeline import layout, resident
from pipeline.data import loader
from pipeline.dump import dump_logits
from pipeline.resident import ResidentStore, use_resident
from pipeline.stores import FeatureStore, PredictionStore
from pipeline.train import train

VIEWS = {"freq_mask": 24, "time_mask": 30, "mixup": 0.5, "mixup_alpha": 10.0, "time_shift": 10}


@pytest.mark.parametrize("views", [0, 2])
def test_resident_batches_equal_the_loaders(in_workspace, views):
    _, params = in_workspace
    train("teacher", params)
    dump_logits(16, 16, views=views, view_cfg=VIEWS, top_k=2 if views else 0)
    store, cache = FeatureStore(layout.FEATURES), PredictionStore(layout.predictions("main"))
    rows = cache.check_matches(store, store.indices("train"))
    sampler = cache.view_sampler(store) if views else None
    rng = np.random.default_rng(0)
    batches = [rng.permutation(64)[:8] for _ in range(5)]
    choice = [rng.integers(views, size=8) for _ in batches] if views else None
    held = ResidentStore(store, torch.device("cpu"), cache, rows, sampler)
    for a, b in zip(held.batches(batches, choice),
                    loader(store, batches, cache, cache_rows=rows, views=sampler, view_choice=choice)):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_student_trained_resident_equals_loader(in_workspace):
    _, params = in_workspace
    train("teacher", params)
    dump_logits(16, 16)
    weights, validation = [], []
    for held in (False, True):
        params["train"]["resident"] = held
        train("student", params)
        checkpoint = torch.load(layout.checkpoint("student", "main"), weights_only=True)
        weights.append(checkpoint["model"])
        validation.append([epoch["val_accuracy"] for epoch in checkpoint["history"]])  # predicted from each source
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
