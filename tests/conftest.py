"""Shared fixtures: a tiny configuration of the real pipeline, built once per session in a temp folder."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

from pipeline import layout
from pipeline.features import extract_features
from pipeline.params import load_params
from pipeline.synthetic import write_dataset

REPO = Path(__file__).resolve().parents[1]
ESC50 = Path(os.environ.get("CMKD_ESC50", REPO.parent / "shared" / "datasets" / "esc50"))  # the real dataset


def tiny(params: dict) -> dict:
    """The repo's params.yaml shrunk to seconds: 4 classes, 1 s clips, 100 frames, test-size models, 2 epochs."""
    p = copy.deepcopy(params)
    p["data"].update(num_classes=4, clips_per_class=16, clip_seconds=1.0)
    p["features"].update(target_frames=100, clips_per_shard=16, workers=2)
    p["train"].update(epochs=2, batch_size=8, warmup_steps=2, lr_decay_start=1)
    for model in p["models"].values():
        model["epochs"] = 2
    p["dump"].update(batch_size=16, clips_per_shard=16)
    return p


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture
def repo_params() -> dict:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory) -> tuple[Path, dict]:
    """A folder holding data/raw and data/features.zarr made by the real prepare and features steps."""
    root = tmp_path_factory.mktemp("workspace")
    params = tiny(load_params(REPO / "params.yaml"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        write_dataset(params["data"], layout.RAW, seed=params["seed"])
        extract_features(layout.MANIFEST, layout.CLASSES, layout.FEATURES, params["features"],
                         params["data"]["multi_label"])
    finally:
        os.chdir(cwd)
    return root, params


@pytest.fixture
def in_workspace(tiny_workspace, monkeypatch):
    root, params = tiny_workspace
    monkeypatch.chdir(root)
    return root, copy.deepcopy(params)
