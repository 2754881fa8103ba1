"""Failing machines on the real engines: a Dask worker killed (SIGKILL) during feature extraction, a disk that fills
up while a store is written, a partial store that cannot be opened, a resume across world sizes (a torchrun rank
that raises in epoch 2: tests/test_distributed.py). Each ends with an output equal to an uninterrupted run's, and
nothing finished is lost."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from pipeline import layout
from pipeline.features.extract import write_feature_store
from pipeline.stores.writer import ResumableStore, StoreWriteError

from .conftest import MAIN, settings

KILLER = '''
"""Loaded by every Python process with this folder on PYTHONPATH (the Dask workers): the first worker to write
block {block} is killed with SIGKILL half way through it, after its features and before the block is marked done."""
import os, signal
from pathlib import Path

from pipeline.features import extract

MARKER = Path({marker!r})
_write = extract.ResumableStore.mark_done


def mark_done(group, block, digest=""):
    if block == {block} and not MARKER.exists():
        MARKER.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return _write(group, block, digest)


extract.ResumableStore.mark_done = staticmethod(mark_done)
'''


def test_a_dask_worker_killed_during_extraction_is_replaced_and_the_store_is_complete(in_workspace, tmp_path,
                                                                                       monkeypatch):
    _, params = in_workspace
    s = settings(params)
    cfg = s.features.model_copy(update={"clips_per_shard": 4, "scheduler": "distributed", "workers": 2})
    reference = tmp_path / "reference.zarr"
    write_feature_store(layout.MANIFEST, layout.CLASSES, reference, cfg.model_copy(update={"scheduler": "threads"}),
                        False)

    hooks, marker = tmp_path / "hooks", tmp_path / "killed"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILLER.format(block=5, marker=str(marker)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "killed.zarr"
    started = time.monotonic()
    write_feature_store(layout.MANIFEST, layout.CLASSES, out, cfg, False)
    seconds = time.monotonic() - started
    assert marker.exists(), "no worker was killed"
    killed = int(marker.read_text())
    assert killed != os.getpid()  # a worker process, not this one
    a, b = zarr.open_group(reference, mode="r"), zarr.open_group(out, mode="r")
    for array in ("features", "clip_stats", "num_frames", "labels", "split"):
        np.testing.assert_array_equal(a[array][:], b[array][:])
    assert seconds < 120


def test_a_resume_across_world_sizes_starts_over_and_says_why(with_teacher, capsys):
    """A resume file of a 2-process run is not continued by 1 process: the global batch differs."""
    from pipeline.training.resume import resume, run_id, save_resume_state

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = layout.resume_state("somewhere", MAIN)
    rng = np.random.default_rng(0)
    save_resume_state(path, run_id("x", 2), 3, [{"epoch": 3}], model, optimizer, scheduler, rng, world_size=2)
    assert resume(path, run_id("x", 1), model, optimizer, scheduler, rng, world_size=1) == (0, [], {})
    assert "made by a run of 2 processes, this one has 1: the global batch and the schedule differ" in \
        capsys.readouterr().out
    assert not path.exists()


def can_mount_tmpfs(folder: Path) -> str | None:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(folder)], capture_output=True,
                            text=True)
    return None if result.returncode == 0 else (result.stderr.strip() or "mount failed")


def test_a_full_disk_names_the_store_keeps_its_blocks_and_the_rerun_completes(in_workspace, tmp_path):
    _, params = in_workspace
    disk = tmp_path / "small_disk"
    why = can_mount_tmpfs(disk) if shutil.which("mount") else "no mount command"
    if why:
        pytest.skip(f"a small tmpfs cannot be mounted here ({why}); the full-disk case needs one")
    try:
        cfg = settings(params).features.model_copy(update={"clips_per_shard": 4, "workers": 1})
        reference = tmp_path / "reference.zarr"
        write_feature_store(layout.MANIFEST, layout.CLASSES, reference, cfg, False)
        out = disk / "features.zarr"
        with pytest.raises(StoreWriteError) as error:
            write_feature_store(layout.MANIFEST, layout.CLASSES, out, cfg, False)
        message = str(error.value)
        assert message.startswith(f"{out}.partial: the disk is full; ") and "blocks are written and kept" in message
        done = zarr.open_group(f"{out}.partial", mode="r")["_done"][:]
        assert 0 < done.sum() < len(done)
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)  # space freed
        write_feature_store(layout.MANIFEST, layout.CLASSES, out, cfg, False)
        a, b = zarr.open_group(reference, mode="r"), zarr.open_group(out, mode="r")
        for array in ("features", "clip_stats", "num_frames"):
            np.testing.assert_array_equal(a[array][:], b[array][:])
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_partial_store_is_started_over_only_when_its_metadata_is_gone(tmp_path, capsys):
    writer = ResumableStore(tmp_path / "store.zarr", "inputs-1", 4)
    group, fresh = writer.open()
    assert fresh
    writer.mark_done(group, 0)
    group.create_array("logits", shape=(4, 2), dtype="float32")
    group, fresh = writer.open()  # the same inputs: resumed with its finished block
    assert not fresh and writer.pending(group) == [1, 2, 3]

    meta = writer.partial / "zarr.json"  # a zarr that reads it otherwise: stop, keep the finished blocks
    good = meta.read_text()
    meta.write_text(json.dumps({**json.loads(good), "zarr_format": 99}))
    with pytest.raises(StoreWriteError, match=r"store.zarr.partial: an interrupted run's store, which cannot be "
                                              r"opened .*it is kept with its finished blocks"):
        writer.open()
    assert (writer.partial / "_done").exists()
    meta.write_text(good)
    assert writer.pending(writer.open()[0]) == [1, 2, 3]

    meta.write_text('{"zarr_format": 3, "node_ty')  # killed while writing its metadata: start over, saying so
    group, fresh = writer.open()
    assert fresh and "zarr.json is corrupt" in capsys.readouterr().out
    meta.unlink()
    group, fresh = writer.open()
    assert fresh and "is missing (killed while it was created); starting over" in capsys.readouterr().out
    other = ResumableStore(tmp_path / "store.zarr", "inputs-2", 4)
    assert other.open()[1] and "made from other inputs or params" in capsys.readouterr().out
