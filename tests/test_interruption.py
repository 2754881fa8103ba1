"""The features and dump stages killed with SIGKILL mid-write, then run again: the output is identical to an
uninterrupted run's, and the shards finished before the kill are not written again."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
import zarr

from pipeline import layout
from pipeline.checkpoint import save_checkpoint
from pipeline.dump import dump_logits
from pipeline.features import extract_features
from pipeline.models import create_model
from pipeline.params import load_params
from pipeline.stores import FeatureStore
from pipeline.synthetic import write_dataset

from .conftest import REPO, tiny


def kill_after_first_block(code: str, cwd: Path, partial: Path) -> list[int]:
    """Run `code` in a child, SIGKILL it once it has finished a block; return the blocks finished by then."""
    child = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, done = time.monotonic() + 120, []
    while child.poll() is None and time.monotonic() < deadline:
        try:
            done = np.flatnonzero(zarr.open_group(partial, mode="r")["_done"][:]).tolist()
        except Exception:  # not created yet, or being created
            done = []
        if done:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, f"it finished before it could be killed: {child.stderr.read()[-2000:]}"
    assert done and partial.exists()
    return done


def shard_mtimes(store: Path, array: str) -> dict[str, int]:
    return {str(p.relative_to(store / array)): p.stat().st_mtime_ns for p in (store / array / "c").rglob("*") if p.is_file()}


def assert_same_store(a: Path, b: Path):
    ga, gb = zarr.open_group(a, mode="r"), zarr.open_group(b, mode="r")
    assert sorted(ga.array_keys()) == sorted(gb.array_keys())
    for name in ga.array_keys():
        np.testing.assert_array_equal(ga[name][:], gb[name][:], err_msg=name)
    drop = lambda attrs: {k: v for k, v in attrs.items() if k != "code"}
    assert drop(dict(ga.attrs)) == drop(dict(gb.attrs))


def test_features_killed_and_rerun(tmp_path, monkeypatch):
    params = tiny(load_params(REPO / "params.yaml"))
    params["data"].update(clips_per_class=32)  # 128 clips in 32 shards of 4, one at a time: slow enough to kill
    params["features"].update(clips_per_shard=4, scheduler="synchronous", workers=1)
    monkeypatch.chdir(tmp_path)
    write_dataset(params["data"], layout.RAW, seed=0)
    cfg = params["features"]
    extract_features(layout.MANIFEST, layout.CLASSES, tmp_path / "uninterrupted.zarr", cfg, False)

    (tmp_path / "features.yaml").write_text(yaml.safe_dump(cfg))
    code = ("import yaml; from pipeline import layout; from pipeline.features import extract_features; "
            "extract_features(layout.MANIFEST, layout.CLASSES, layout.FEATURES, "
            "yaml.safe_load(open('features.yaml')), False)")
    partial = tmp_path / "data/features.zarr.partial"
    done = kill_after_first_block(code, tmp_path, partial)
    assert not layout.FEATURES.exists()  # nothing half-written under the final name
    before = shard_mtimes(partial, "features")

    extract_features(layout.MANIFEST, layout.CLASSES, layout.FEATURES, cfg, False)
    assert_same_store(layout.FEATURES, tmp_path / "uninterrupted.zarr")
    after = shard_mtimes(layout.FEATURES, "features")
    for b in done:  # shard b holds clips 4b..4b+3; with one clip per chunk inside it, its file is c/b/0/0
        assert after[f"c/{b}/0/0"] == before[f"c/{b}/0/0"], f"finished shard {b} was written again"
    assert len(done) < 32


def test_dump_killed_and_rerun(in_workspace, tmp_path):
    root, params = in_workspace
    store = FeatureStore(layout.FEATURES)
    teacher = create_model("efficientnet_b0", num_classes=len(store.classes), num_frames=store.num_frames)
    checkpoint = tmp_path / "teacher.pt"  # random weights; a bigger model than the tests train, so it is slow enough
    save_checkpoint(checkpoint, teacher, role="teacher", run="main", architecture="cnn",
                    model_config={"name": "efficientnet_b0", "pooling": "mean"}, num_classes=len(store.classes),
                    num_frames=store.num_frames, num_mel_bins=128, classes=store.classes,
                    features_fingerprint=store.fingerprint)
    dump_logits(2, 2, checkpoint=checkpoint, out=tmp_path / "uninterrupted.zarr")

    out = tmp_path / "predictions.zarr"
    code = (f"from pipeline.dump import dump_logits; "
            f"dump_logits(2, 2, checkpoint={str(checkpoint)!r}, out={str(out)!r})")
    partial = tmp_path / "predictions.zarr.partial"
    done = kill_after_first_block(code, root, partial)
    assert not out.exists()
    before = shard_mtimes(partial, "logits")

    dump_logits(2, 2, checkpoint=checkpoint, out=out)
    assert_same_store(out, tmp_path / "uninterrupted.zarr")
    after = shard_mtimes(out, "logits")
    for b in done:
        assert after[f"c/{b}/0"] == before[f"c/{b}/0"], f"finished shard {b} was written again"
    assert len(done) < 32
