"""Several processes: torchrun (gloo on this CPU) trains and dumps exactly as one process does, launched by the
stage scripts themselves from params `distributed`."""
import json
import os
import subprocess
import sys

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


def test_two_processes_train_the_student_as_one_process_with_the_doubled_batch(with_teacher):
    root, params = with_teacher
    params["train"]["batch_size"] = 4
    params["distributed"] = {"nproc_per_node": 2}
    output = run_stage(root, params, "train_student.py", "forward", "main", "0")
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
    from pipeline.stores import FeatureStore

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


def test_two_rank_dump_writes_the_one_process_store(with_teacher):
    root, params = with_teacher
    one = zarr.open_group(cache_path(), mode="r")  # the fixture's dump, one process
    reference = {name: one[name][:] for name in ("logits", "clip_ids")}
    params["distributed"] = {"nproc_per_node": 2}
    (root / cache_path()).rename(root / "one_process.zarr")
    output = run_stage(root, params, "dump_logits.py", "forward", "main", "0")
    assert "launching 2 processes" in output
    two = zarr.open_group(cache_path(), mode="r")
    np.testing.assert_array_equal(two["clip_ids"][:], reference["clip_ids"])
    np.testing.assert_array_equal(two["logits"][:], reference["logits"])  # bit for bit
    kept = {k: v for k, v in one.attrs.items() if k != "code"}
    assert {k: v for k, v in two.attrs.items() if k != "code"} == kept
    assert not (root / "data/runs/main/seed0/forward/teacher_predictions.zarr.partial").exists()


def test_a_single_process_is_its_own_world():
    world = World()
    assert world.is_main and world.part == (0, 1)
    t = torch.ones(3)
    assert world.sum(t) is t and world.barrier() is None
