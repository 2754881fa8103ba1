"""Shared fixtures: a tiny configuration of the real pipeline, built once per session, copied for each test.

Each test that works in a workspace gets its own copy of it (`in_workspace`, `with_teacher`), so tests do not
depend on each other's order: nothing one test trains or dumps is seen by another.
"""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import torch

from pipeline import layout
from pipeline.runs import Run
from pipeline.settings import read_yaml, settings_from

REPO = Path(__file__).resolve().parents[1]
ESC50 = Path(os.environ.get("CMKD_ESC50", REPO.parent / "shared" / "datasets" / "esc50"))  # the real dataset
MAIN = Run("main", 0)


def tiny(params: dict) -> dict:
    """The repo's params.yaml shrunk to seconds: 4 classes, 1 s clips, 100 frames, test-size models, 2 epochs."""
    p = copy.deepcopy(params)
    p["data"].update(num_classes=4, clips_per_class=16, clip_seconds=1.0)
    p["features"].update(target_frames=100, clips_per_shard=16, workers=2)
    p["train"].update(batch_size=8, warmup_steps=2, lr_decay_start=1)
    for model in p["models"].values():
        model["epochs"] = 2
    p["dump"].update(batch_size=16, clips_per_shard=16)
    return p


def settings(params: dict):
    """Validated settings from a params tree (what load_settings makes of params.yaml)."""
    return settings_from(params, "test params")


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture
def repo_params() -> dict:
    return read_yaml(REPO / "params.yaml")


def _copy(source: Path, target: Path) -> None:
    shutil.copytree(source / "data", target / "data")


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory) -> tuple[Path, dict]:
    """A folder holding data/raw and data/features.zarr made by the real prepare and features steps."""
    from pipeline.features.extract import extract
    from pipeline.prepare import prepare

    root = tmp_path_factory.mktemp("workspace")
    params = tiny(read_yaml(REPO / "params.yaml"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        prepare(settings(params))
        extract(settings(params))
    finally:
        os.chdir(cwd)
    return root, params


@pytest.fixture(scope="session")
def teacher_workspace(tiny_workspace, tmp_path_factory) -> Path:
    """The tiny workspace plus a trained CNN teacher (run main, seed 0) and its plain cache."""
    from pipeline.cache.dump import dump
    from pipeline.training.loop import train

    source, params = tiny_workspace
    root = tmp_path_factory.mktemp("with_teacher")
    _copy(source, root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        train(settings(params), "teacher", MAIN)
        dump(settings(params), MAIN)
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def in_workspace(tiny_workspace, tmp_path, monkeypatch) -> tuple[Path, dict]:
    """A private copy of the tiny workspace (data/raw, data/features.zarr) as the working directory."""
    source, params = tiny_workspace
    root = tmp_path / "workspace"
    _copy(source, root)
    monkeypatch.chdir(root)
    return root, copy.deepcopy(params)


@pytest.fixture
def with_teacher(teacher_workspace, tiny_workspace, tmp_path, monkeypatch) -> tuple[Path, dict]:
    """A private copy of the workspace with a trained teacher and its cache, as the working directory."""
    root = tmp_path / "workspace"
    _copy(teacher_workspace, root)
    monkeypatch.chdir(root)
    return root, copy.deepcopy(tiny_workspace[1])


@pytest.fixture
def main_run() -> Run:
    return MAIN


def checkpoint(role: str, run: Run = MAIN) -> dict:
    return torch.load(layout.checkpoint(role, run), weights_only=True)
