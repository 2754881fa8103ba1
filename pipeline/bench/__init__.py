"""`cmkd bench`: how fast each step runs, and how close the real cached path comes to the model's own speed.

It builds a throwaway workspace of synthetic audio at the chosen size and runs the real code on it:
  features  extraction clips/s (decode + fbank + Zarr write) with 1 and N Dask workers (float64 on the CPU, and on a
            GPU in float32 and float64); the fbank computation alone in each precision
  read      random-access batches from the feature and prediction stores, samples/s, with 0 and N loader workers
  dump      the teacher-prediction dump, clips/s: the whole stage (store read + teacher forward + Zarr write, with
            its fixed costs), and its loop alone at steady state
  train     student samples/s three ways: pure (tensors already on the device: the ceiling), cached (features and
            cached predictions through the loader, or resident in device memory: the real path), online (the frozen
            teacher run on every batch: what the cache saves); with --compile also the compiled student and its
            compile time. Each is the median of `repeats` interleaved rounds.
  bootstrap the report's paired bootstrap of an mAP difference at AudioSet's evaluation shape (20,000 clips x 527
            classes on the cpu and gpu sizes): this code's weighted draws against the former way (each draw's rows
            copied and scored class by class with scikit-learn), seconds per draw and for the report's resamples
It prints a table and writes the figures as JSON. One file per section; common.py holds what they share.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ..prepare import prepare
from ..runtime import device as default_device
from .bootstrap import bench_bootstrap
from .common import SIZES, Results, bench_models, inside, workspace_settings
from .detect import bench_detect
from .dump import bench_dump
from .export import bench_export
from .features import bench_features
from .processes import bench_processes
from .read import bench_read
from .train import bench_train

SECTIONS = ("features", "distributed", "read", "dump", "train", "processes", "export", "detect", "bootstrap")


def run_bench(size_name: str, out: Path | None = None, workdir: Path | None = None, compile_step: bool = False,
              sections: tuple[str, ...] = SECTIONS, overrides: dict | None = None) -> dict:
    size = replace(SIZES[size_name], **(overrides or {}))
    dev = default_device()
    torch.manual_seed(0)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = Results()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="cmkd-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"cmkd bench: size {size_name} on {_device_name(dev)}, workspace {root}", flush=True)
    try:
        with inside(root):
            settings = workspace_settings(size)
            if set(sections) - {"export", "detect", "bootstrap"}:  # the others read the feature store this one writes
                prepare(settings)
                bench_features(size, dev, settings, results, cluster="distributed" in sections)
            names = list(bench_models(size_name).values())
            predictions = {}
            for teacher in names:
                if "dump" in sections or "train" in sections or "read" in sections:
                    predictions[teacher] = bench_dump(size, dev, settings, teacher, results)
            if "read" in sections:
                bench_read(size, dev, predictions[names[0]], results)
            if "train" in sections:  # each family's model the student of the next family's
                for student, teacher in zip(names, names[1:] + names[:1]):
                    bench_train(size, size_name, dev, settings, student, teacher, predictions[teacher], compile_step,
                                results)
                    if dev.type == "cuda":  # the finished student's models and resident stores
                        torch.cuda.empty_cache()
            if "processes" in sections:
                bench_processes(size, dev, settings, results, names[-1])
            if "export" in sections:
                bench_export(size_name, results)
            if "detect" in sections:
                bench_detect(size_name, results)
            if "bootstrap" in sections:
                bench_bootstrap(size_name, results)
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)
    report = {"size": size_name, "config": asdict(size), "device": _device_name(dev), "torch": torch.__version__,
              "cpu_count": os.cpu_count(), "platform": platform.platform(), "results": results.rows}
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
    return report


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def print_table(report: dict, console: Console | None = None) -> None:
    table = Table(title=f"cmkd bench, size {report['size']}, {report['device']}, torch {report['torch']}")
    for column in ("section", "measurement", "value", "unit", "detail"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in report["results"]:
        table.add_row(r["section"], r["name"], f"{r['value']:,.1f}", r["unit"], r["detail"])
    (console or Console()).print(table)
