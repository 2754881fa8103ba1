"""The features and dump stages killed with SIGKILL mid-write, then run again: the output is identical to an
uninterrupted run's, and the shards finished before the kill are not written again."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from pipeline import layout
from pipeline.features.extract import extract
from pipeline.manifest import read_classes, read_manifest
from pipeline.models import create_model
from pipeline.models.checkpoint import Checkpoint, save_checkpoint
from pipeline.prepare import prepare
from pipeline.settings import read_yaml
from pipeline.stores.features import FeatureStore

from .conftest import MAIN, REPO, cache_path, dump, path, settings, tiny


def kill_after_first_block(code: str | list[str], cwd: Path, partial: Path) -> list[int]:
    """Run `code` (Python source, or a command) in a child, SIGKILL it (and every process it started: a local
    Dask cluster's workers) once it has finished a block; return the blocks finished by then."""
    command = [sys.executable, "-c", code] if isinstance(code, str) else code
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    deadline, done = time.monotonic() + 120, []
    while child.poll() is None and time.monotonic() < deadline:
        try:
            done = np.flatnonzero(zarr.open_group(partial, mode="r")["_done"][:]).tolist()
        except Exception:  # not created yet, or being created
            done = []
        if done:
            break
        time.sleep(0.005)
    os.killpg(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, f"it finished before it could be killed: {child.stderr.read()[-2000:]}"
    assert done and partial.exists()
    return done


def shard_mtimes(store: Path, array: str) -> dict[str, int]:
    return {str(p.relative_to(store / array)): p.stat().st_mtime_ns for p in (store / array / "c").rglob("*")
            if p.is_file()}


def assert_same_store(a: Path, b: Path):
    ga, gb = zarr.open_group(a, mode="r"), zarr.open_group(b, mode="r")
    assert sorted(ga.array_keys()) == sorted(gb.array_keys())
    for name in ga.array_keys():
        np.testing.assert_array_equal(ga[name][:], gb[name][:], err_msg=name)
    drop = lambda attrs: {k: v for k, v in attrs.items() if k != "code"}
    assert drop(dict(ga.attrs)) == drop(dict(gb.attrs))


@pytest.mark.parametrize("scheduler", ["synchronous", "distributed"])
def test_features_killed_and_rerun(tmp_path, monkeypatch, scheduler):
    """distributed: a dask.distributed LocalCluster of 2 worker processes, each writing its shards, killed with its
    client; run again, the store is the one the threads scheduler writes, and the cluster's shards are kept.

    The kill comes while a shard is unfinished whatever the machine's speed: one clip of shard 5 is a named pipe
    while the stage runs, and reading it waits until the test has killed the stage (then the real file is back)."""
    params = tiny(read_yaml(REPO / "params.yaml"))
    params["data"].update(clips_per_class=32)  # 128 clips in 32 shards of 4
    params["features"].update(clips_per_shard=4, scheduler="threads", workers=2)
    monkeypatch.chdir(tmp_path)
    prepare(settings(params))
    extract(settings(params))
    layout.FEATURES.rename(tmp_path / "uninterrupted.zarr")
    params["features"].update(scheduler=scheduler, workers=1 if scheduler == "synchronous" else 2)

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = [sys.executable, str(REPO / "stages" / "features.py")]  # the DVC stage itself, as `dvc repro` runs it
    partial = tmp_path / "data/features.zarr.partial"
    waiting = Path(read_manifest(layout.MANIFEST, read_classes(layout.CLASSES))[21].path)  # row 21: shard 5
    waiting.rename(waiting.with_suffix(".real"))
    os.mkfifo(waiting)
    try:
        done = kill_after_first_block(code, tmp_path, partial)
    finally:
        waiting.unlink()
        waiting.with_suffix(".real").rename(waiting)
    assert not layout.FEATURES.exists()  # nothing half-written under the final name
    assert 5 not in done  # the shard holding the pipe was still being read when the stage was killed
    before = shard_mtimes(partial, "features")

    params["features"].update(scheduler="threads", workers=2)  # any scheduler resumes any other's shards
    extract(settings(params))
    assert_same_store(layout.FEATURES, tmp_path / "uninterrupted.zarr")  # the killed cluster's shards included
    after = shard_mtimes(layout.FEATURES, "features")
    for b in done:  # shard b holds clips 4b..4b+3; with one clip per chunk inside it, its file is c/b/0/0
        assert after[f"c/{b}/0/0"] == before[f"c/{b}/0/0"], f"finished shard {b} was written again"


def test_dump_killed_and_rerun(in_workspace, tmp_path):
    root, params = in_workspace
    params["dump"].update(batch_size=2, clips_per_shard=2)
    store = FeatureStore(layout.FEATURES)
    teacher = create_model("efficientnet_b0", num_classes=len(store.classes), num_frames=store.num_frames)
    # random weights; a bigger model than the tests train, so it is slow enough to kill
    save_checkpoint(path("teacher"), teacher, Checkpoint(
        role="labels", run="main", architecture="cnn", network={"name": "efficientnet_b0", "pooling": "mean"},
        num_classes=len(store.classes), num_frames=store.num_frames, num_mel_bins=128, classes=store.classes,
        normalization=store.normalization.as_dict(), features_fingerprint=store.fingerprint))
    dump(settings(params), MAIN)
    cache_path().rename(tmp_path / "uninterrupted.zarr")

    (root / "params.yaml").write_text(yaml.safe_dump(params))
    code = ("from pipeline.cache.dump import dump; from pipeline.runs import Run; "
            "from pipeline.settings import load_settings; dump(load_settings(), 'forward', Run('main', 0))")
    out = cache_path()
    partial = out.with_name(out.name + ".partial")
    done = kill_after_first_block(code, root, partial)
    assert not out.exists()
    before = shard_mtimes(partial, "logits")

    dump(settings(params), MAIN)
    assert_same_store(out, tmp_path / "uninterrupted.zarr")
    after = shard_mtimes(out, "logits")
    for b in done:
        assert after[f"c/{b}/0"] == before[f"c/{b}/0"], f"finished shard {b} was written again"
    assert len(done) < 32


def test_a_local_cluster_leaves_the_environment_as_it_was(tmp_path, monkeypatch):
    """dask.distributed's LocalCluster sets OMP_NUM_THREADS=1 (and more) in os.environ for its workers; left there,
    every later child process (a training stage, a test's subprocess) would run single-threaded."""
    import os

    from pipeline.features.extract import compute_on_cluster
    from pipeline.settings import FeatureSettings

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = dict(os.environ)
    assert compute_on_cluster([], FeatureSettings(scheduler="distributed", workers=1), lambda: None, print) == []
    assert dict(os.environ) == before
