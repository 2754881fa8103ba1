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
from pipeline.settings import read_yaml
from pipeline.validation import settings_from

REPO = Path(__file__).resolve().parents[1]
ESC50 = Path(os.environ.get("CMKD_ESC50", REPO.parent / "shared" / "datasets" / "esc50"))  # the real dataset
MAIN = Run("main", 0)


def tiny(params: dict) -> dict:
    """The repo's params.yaml shrunk to seconds: 4 classes, 1 s clips, 100 frames, test-size models, 2 epochs, one
    seed, the forward direction. (train.resident and the rest as params.yaml sets them.)"""
    p = copy.deepcopy(params)
    p.update(seeds=[0], directions=["forward"])
    p["data"].update(num_classes=4, clips_per_class=16, clip_seconds=1.0, split={"val": 0.15, "test": 0.15})
    p["features"].update(target_frames=100, clips_per_shard=16, workers=2)
    p["train"].update(batch_size=8, warmup_steps=2, lr_decay_start=1)
    for model in p["models"].values():
        model["epochs"] = 2
    p["dump"].update(batch_size=16, clips_per_shard=16)
    return p


def settings(params: dict):
    """Validated settings from a params tree (what load_settings makes of params.yaml)."""
    return settings_from(params, "test params")


# The longest tests (each a minute or more of subprocesses: DVC's stages, torchrun's ranks) start first, so that
# the workers do not wait for one of them at the end of the suite.
LONGEST_FIRST = ("test_dvc_pipeline.py::test_dvc_repro_and_experiments", "test_change_reruns.py",
                 "test_distributed.py", "test_bench.py", "test_interruption.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: next((i for i, name in enumerate(LONGEST_FIRST) if name in item.nodeid),
                                     len(LONGEST_FIRST)))


if os.environ.get("PYTEST_XDIST_WORKER"):  # tests run in one worker per core: one thread each, and so do the
    torch.set_num_threads(1)                 # stages and workers they start (torchrun, Dask, DVC's stages)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


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


def train(s, role: str, run: Run = MAIN, direction: str = "forward") -> dict:
    """Train the model that plays `role` in `direction` (what stages/train.py and train_student.py do)."""
    from pipeline.training import jobs
    from pipeline.training.adopt import adopt_if_ready
    from pipeline.training.loop import train as train_job

    job = jobs.for_role(role, s.direction(direction))
    if job.role == "labels" and adopt_if_ready(s, job.architecture, run):
        return {}
    return train_job(s, job, run)


def dump(s, run: Run = MAIN, direction: str = "forward") -> None:
    from pipeline.cache.dump import dump as dump_logits

    dump_logits(s, direction, run)


def evaluate(s, role: str, run: Run = MAIN, direction: str = "forward") -> dict:
    from pipeline.evaluation.evaluate import evaluate as evaluate_model

    return evaluate_model(name(role, s, direction), run)


def name(role: str, s=None, direction: str = "forward") -> str:
    """The layout name of the model that plays `role` (teacher, baseline, student) in `direction`."""
    from pipeline.training import jobs

    s = s or settings(tiny(read_yaml(REPO / "params.yaml")))
    return jobs.for_role(role, s.direction(direction)).name


def path(role: str, run: Run = MAIN, s=None, direction: str = "forward") -> Path:
    """The checkpoint of the model that plays `role`."""
    return layout.checkpoint(name(role, s, direction), run)


def cache_path(run: Run = MAIN, direction: str = "forward") -> Path:
    return layout.predictions(direction, run)


@pytest.fixture(scope="session")
def teacher_workspace(tiny_workspace, tmp_path_factory) -> Path:
    """The tiny workspace plus a trained CNN teacher (run main, seed 0) and its plain cache."""
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


def checkpoint(role: str, run: Run = MAIN, s=None, direction: str = "forward"):
    """The description (a pipeline.models.checkpoint.Checkpoint) of the model that plays `role`."""
    from pipeline.models.checkpoint import read_checkpoint

    return read_checkpoint(path(role, run, s, direction))[2]


def stored(role: str, run: Run = MAIN, s=None, direction: str = "forward") -> tuple[dict, list | None, object]:
    """(weights, ensemble weights or None, description) of the model that plays `role`, as its checkpoint holds them."""
    from pipeline.models.checkpoint import read_checkpoint

    return read_checkpoint(path(role, run, s, direction))
