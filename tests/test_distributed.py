"""Several processes: torchrun (gloo on this CPU) trains and dumps exactly as one process does, launched by the
stage scripts themselves from params `distributed`; a rank that fails stops the job, and the re-run resumes."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from pipeline import layout
from pipeline.runtime import World

from .conftest import MAIN, REPO, cache_path, name, settings, stored, train


def run_stage(root, params: dict, script: str, *args) -> str:
    (root / "params.yaml").write_text(json.dumps(params))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    result = subprocess.run([sys.executable, str(REPO / "stages" / script), *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def two_processes(teacher_workspace, tiny_workspace, tmp_path_factory):
    """The student trained by 2 processes (torchrun, gloo), each taking 4 clips of every batch of 8; the stage
    script starts torchrun itself. Returns (workspace, params, stage output)."""
    root = tmp_path_factory.mktemp("two_processes")
    shutil.copytree(teacher_workspace / "data", root / "data")
    params = copy.deepcopy(tiny_workspace[1])
    params["train"]["batch_size"] = 4
    params["distributed"] = {"nproc_per_node": 2}
    return root, params, run_stage(root, params, "train_student.py", "forward", "main")


@pytest.mark.xdist_group("two_processes")  # one worker trains the module fixture once for both tests
def test_two_processes_train_the_student_as_one_process_with_the_doubled_batch(two_processes, tmp_path,
                                                                                monkeypatch):
    source, params, output = two_processes
    root = tmp_path / "workspace"
    shutil.copytree(source / "data", root / "data")
    shutil.copytree(source / "results", root / "results")
    monkeypatch.chdir(root)
    params = copy.deepcopy(params)
    assert "launching 2 processes" in output and "torch.distributed.run" in output
    ddp_weights, _, ddp = stored("student")
    curves = (root / layout.live_dir(name("student"), MAIN) / "metrics.json").read_text()  # written once, by rank 0

    params["train"]["batch_size"] = 8
    params["distributed"] = {"nproc_per_node": 1}
    train(settings(params), "student", MAIN)
    single_weights, _, single = stored("student")
    assert ddp_weights.keys() == single_weights.keys()  # no `module.` prefix from DDP
    differences, key_bias = split_key_bias({k: (ddp_weights[k] - single_weights[k]).abs() for k in single_weights})
    worst = max(differences, key=differences.get)
    assert differences[worst] <= 1e-5, (worst, differences[worst])
    # The attention's key bias adds one constant to every score of a query, which softmax ignores: its gradient is
    # 0 but for float rounding, and Adam turns that noise into steps of +-lr. It differs as much between one
    # process on 1 and on 2 threads; it can move no further than lr per step.
    from pipeline.stores.features import FeatureStore

    steps = len(ddp.history) * (len(FeatureStore(layout.FEATURES).indices("train")) // 8)
    assert max(key_bias.values()) <= 2 * params["models"]["ast"]["lr"] * steps
    assert len(ddp.history) == len(single.history) == params["models"]["ast"]["epochs"]
    for a, b in zip(ddp.history, single.history):  # the same losses over the same global batches
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-5) and a["val/accuracy"] == b["val/accuracy"]
    single_curves = (layout.live_dir(name("student"), MAIN) / "metrics.json").read_text()
    assert json.loads(curves)["step"] == json.loads(single_curves)["step"]


def split_key_bias(differences: dict) -> tuple[dict, dict]:
    """(max difference per tensor without the attention key biases, max difference of each key bias)."""
    rest, key_bias = {}, {}
    for key, d in differences.items():
        if key.endswith("attn.qkv.bias"):  # [query | key | value] biases
            width = d.shape[0] // 3
            key_bias[key] = d[width : 2 * width].max().item()
            d = torch.cat([d[:width], d[2 * width :]])
        rest[key] = d.max().item()
    return rest, key_bias


TRAIN_WITH_A_FAULT = '''
"""stages/train_student.py under torchrun, with rank 1 raising in the second step of epoch 2 (once: a marker file
says it happened)."""
import os, runpy, sys, time
from pathlib import Path

from pipeline.training import loop

MARKER = Path({marker!r})
if os.environ.get("RANK") == "1" and not MARKER.exists():
    plan, step, epochs = loop.training_plan, loop.train_step, [0, 0]

    def training_plan(*args, **kwargs):
        epochs[0], epochs[1] = epochs[0] + 1, 0
        return plan(*args, **kwargs)

    def train_step(*args, **kwargs):
        epochs[1] += 1
        if epochs == [2, 2]:
            MARKER.write_text(str(time.time()))
            raise RuntimeError("injected fault: rank 1 fails in epoch 2")
        return step(*args, **kwargs)

    loop.training_plan, loop.train_step = training_plan, train_step
sys.argv = [{script!r}, *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
'''


def torchrun(root: Path, script: Path, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.xdist_group("two_processes")
def test_a_rank_that_raises_in_epoch_2_stops_the_job_and_the_rerun_resumes_to_the_same_weights(two_processes,
                                                                                                tmp_path, monkeypatch):
    """A torchrun rank fails: the job ends (no hang) with the rank's error, the last finished epoch is kept, and the
    re-run resumes from it to the weights of the uninterrupted run."""
    source, params, _ = two_processes
    root = tmp_path / "workspace"
    shutil.copytree(source / "data", root / "data")
    monkeypatch.chdir(root)
    (root / "params.yaml").write_text(json.dumps(params))
    reference, _, reference_meta = stored("student")  # the uninterrupted 2-process run
    layout.checkpoint(name("student"), MAIN).unlink()
    script = REPO / "stages" / "train_student.py"

    marker = tmp_path / "failed_at"
    faulty = tmp_path / "train_with_a_fault.py"
    faulty.write_text(TRAIN_WITH_A_FAULT.format(marker=str(marker), script=str(script)))
    failed = torchrun(root, faulty, "forward", "main")
    stopped = time.time()
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and marker.exists()
    assert "injected fault: rank 1 fails in epoch 2" in output
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", output), output[-2000:]  # torchrun's failure summary
    reported_after = stopped - float(marker.read_text())
    assert reported_after < 30, reported_after  # no hang: the job ends with the rank's error
    resume = torch.load(layout.resume_state(name("student"), MAIN), weights_only=True)
    assert resume["epoch"] == 1 and resume["world_size"] == 2  # the last finished epoch, and who wrote it

    again = torchrun(root, script, "forward", "main")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout + again.stderr
    resumed, _, resumed_meta = stored("student")
    for key, tensor in reference.items():
        assert torch.equal(tensor, resumed[key]), key
    assert [h["train/loss"] for h in resumed_meta.history] == [h["train/loss"] for h in reference_meta.history]
    assert resumed_meta.world_size == 2
    print(f"rank 1's error ended the job {reported_after:.1f} s after it was raised")


def test_two_rank_dump_writes_the_one_process_store(with_teacher):
    root, params = with_teacher
    one = zarr.open_group(cache_path(), mode="r")  # the fixture's dump, one process
    reference = {name: one[name][:] for name in ("logits", "clip_ids")}
    params["distributed"] = {"nproc_per_node": 2}
    (root / cache_path()).rename(root / "one_process.zarr")
    run_stage(root, params, "pick_teacher.py", "forward", "main")  # the stage the dump depends on
    output = run_stage(root, params, "dump_logits.py", "forward", "main")
    assert "launching 2 processes" in output
    two = zarr.open_group(cache_path(), mode="r")
    np.testing.assert_array_equal(two["clip_ids"][:], reference["clip_ids"])
    np.testing.assert_array_equal(two["logits"][:], reference["logits"])  # bit for bit
    kept = {k: v for k, v in one.attrs.items() if k != "code"}
    assert {k: v for k, v in two.attrs.items() if k != "code"} == kept
    assert not (root / "data/runs/main/forward/cache/seed0.zarr.partial").exists()


def test_a_single_process_is_its_own_world():
    world = World()
    assert world.is_main and world.part == (0, 1)
    t = torch.ones(3)
    assert world.sum(t) is t and world.barrier() is None
