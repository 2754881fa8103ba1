"""CMKD between models of two front-ends, both directions, on the tiny workspace: an EfficientAT MobileNet (its own
32 kHz mel, data/frontends/efficientat.zarr) and the AST (the fbank of data/features.zarr). Each model trains and
is scored on its own store; the dump runs the teacher on the teacher's store and the student reads the cache by
clip id from the other one."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import layout
from pipeline.audit import inspect_path
from pipeline.features.extract import extract
from pipeline.models.checkpoint import read_checkpoint
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore

from .conftest import MAIN, dump, evaluate, name, settings, train


@pytest.fixture
def two_frontends(in_workspace):
    _, params = in_workspace
    params["models"]["cnn"] = {"name": "efficientat_test", "lr": 1e-3, "epochs": 2}
    params["frontends"] = ["efficientat"]
    s = settings(params)
    extract(s, "efficientat")
    return s


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_a_student_learns_from_a_teacher_of_another_front_end(two_frontends, direction):
    s = two_frontends
    fbank, mel = FeatureStore(layout.FEATURES), FeatureStore(layout.store("efficientat"))
    assert mel.group.attrs["feature_params"]["frontend"] == "efficientat" and mel.num_mel_bins == 128
    assert list(mel.clip_ids) == list(fbank.clip_ids) and list(mel.split) == list(fbank.split)

    train(s, "teacher", MAIN, direction)
    dump(s, MAIN, direction)
    train(s, "student", MAIN, direction)
    scores = evaluate(s, "student", MAIN, direction)
    assert 0 <= scores["accuracy"] <= 1

    arch = {"teacher": s.direction(direction).teacher, "student": s.direction(direction).student}
    frontend = {"cnn": "efficientat", "ast": "fbank"}
    for role in ("teacher", "student"):
        meta = read_checkpoint(layout.checkpoint(name(role, s, direction), MAIN))[2]
        assert meta.frontend_name == frontend[arch[role]], role
    cache = PredictionStore(layout.predictions(direction, MAIN))
    teacher_store = mel if arch["teacher"] == "cnn" else fbank
    assert cache.group.attrs["features"] == str(teacher_store.path)  # the dump read the teacher's own store
    train_ids = set(fbank.clip_ids[fbank.split == "train"])
    assert train_ids <= set(cache.clip_ids)  # every clip the student trains on, by id
    assert np.isfinite(cache.logits[:]).all()

    report = inspect_path(layout.predictions(direction, MAIN))
    assert report["summary"]["feature store"] == str(teacher_store.path)
    assert report["summary"]["matches the feature store"] is True
    assert inspect_path(layout.store("efficientat"))["provenance"]["feature_params"]["frontend"] == "efficientat"
