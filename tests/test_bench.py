"""`cmkd bench` on the tiny size (CPU), and the store reads it measures."""
import json

import numpy as np
import pytest
import zarr

from pipeline.bench import run_bench
from pipeline.bench.common import bench_models
from pipeline.stores.schema import read_rows


def test_read_rows_returns_rows_in_the_order_asked(tmp_path):
    data = np.arange(20 * 3 * 4, dtype=np.float16).reshape(20, 3, 4)
    array = zarr.open_group(tmp_path / "s.zarr", mode="w").create_array(
        "x", shape=data.shape, chunks=(1, 3, 4), shards=(8, 3, 4), dtype="float16")
    array[:] = data
    rows = np.array([17, 2, 9, 2, 0])
    np.testing.assert_array_equal(read_rows(array, rows), data[rows])
    assert read_rows(array, np.array([], dtype=int)).shape == (0, 3, 4)


def test_bench_tiny_measures_every_step(tmp_path):
    out = tmp_path / "bench.json"
    # eager only: the compiled rows run the same code with for_training's torch.compile, which
    # tests/test_models.py checks on its own (compiling every row's model here took 85 s of the suite's 5 minutes)
    compiled = False
    # without the dask.distributed rows and the 1- and 2-process training stage: they run the code that
    # test_interruption.py and test_distributed.py test, and their cluster and process starts cost 40 s
    report = run_bench("tiny", out=out, workdir=tmp_path / "work", compile_step=compiled, overrides={"repeats": 2},
                       sections=("features", "read", "dump", "train"))
    assert json.loads(out.read_text()) == report
    names = {(r["section"], r["name"]) for r in report["results"]}
    models = list(bench_models("tiny").values())  # one of each family, each the student of the next's
    for section, count in {"features": 5, "dump": 2 * len(models), "read": 2,
                           "train": (9 if compiled else 5) * len(models)}.items():
        assert sum(s == section for s, _ in names) == count, section
    for teacher in models:
        assert ("dump", f"teacher predictions, {teacher}, steady state") in names
    for student, teacher in zip(models, models[1:] + models[:1]):
        for path in ("pure step (ceiling)", "cached path", "cached path, resident stores",
                     f"online teacher ({teacher})", f"online teacher ({teacher}), resident features"):
            assert ("train", f"{student} student: {path}") in names
        if compiled:
            for path in ("compiled pure step", "compiled, cached path", "compiled, cached path, resident stores",
                         f"compiled, online teacher ({teacher})"):
                assert ("train", f"{student} student: {path}") in names
    assert all(r["value"] > 0 and r["unit"] in ("clips/s", "samples/s") for r in report["results"])
    for row in (r for r in report["results"] if r["section"] == "train" and "runs" in r):  # interleaved rounds
        assert len(row["runs"]) == 2 and row["value"] == pytest.approx(float(np.median(row["runs"])), abs=1e-3)
    assert report["device"].startswith("CPU") and report["config"]["frames"] == 100


def test_bench_bootstrap_times_both_ways_of_drawing(tmp_path):
    report = run_bench("tiny", workdir=tmp_path / "work", sections=("bootstrap",))
    rows = {r["name"]: r for r in report["results"]}
    assert {r["section"] for r in report["results"]} == {"bootstrap"} and len(rows) == 4
    assert all(r["value"] > 0 and "400 clips x 20 classes" in r["detail"] for r in rows.values())
    weighted, former = rows["per draw, weighted draws (this code)"], rows["per draw, copied rows + scikit-learn "
                                                                           "per class (former)"]
    assert rows["former / this code, per draw"]["value"] == pytest.approx(former["value"] / weighted["value"],
                                                                         rel=0.05)
