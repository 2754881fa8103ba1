"""`cmkd bench --section processes`: the student through the real training stage in 1 and 2 processes (torchrun,
DistributedDataParallel), the same global batch."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import layout
from ..models.checkpoint import read_checkpoint
from ..runs import Run
from .common import Results, Size


def bench_processes(size: Size, dev: torch.device, settings, results: Results, teacher: str) -> None:
    """The AST student through the real training stage (`cmkd train student`), in 1 and 2 processes: torchrun with
    DistributedDataParallel (gloo on the CPU, NCCL on GPUs), the same global batch. Samples/s of the whole run
    (every process), the median over its epochs after the first."""
    import subprocess
    import sys

    run = Run()
    shutil.rmtree(layout.predictions("forward", run), ignore_errors=True)
    shutil.copytree(layout.DATA / f"predictions_{teacher}.zarr", layout.predictions("forward", run))
    counts = [1, 2] if dev.type != "cuda" else [1] + ([2] if torch.cuda.device_count() >= 2 else [])
    for count in counts:
        params = settings.as_params()
        params["models"]["student"]["epochs"] = 3
        params["train"].update(batch_size=size.batch // count, num_workers=0)
        params["distributed"].update(nproc_per_node=count)
        Path("bench_params.yaml").write_text(json.dumps(params))  # JSON is YAML
        subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "student", "-p", "bench_params.yaml"],
                       check=True, stdout=subprocess.DEVNULL)
        history = read_checkpoint(layout.checkpoint(layout.student_model("forward"), run))[2].history
        rate = float(np.median([h["train/samples_per_s"] for h in history[1:]]))
        student = params["models"]["student"]["name"]
        results.add("train", f"{student} student, real stage, {count} process{'es' if count > 1 else ''}", rate,
                    "samples/s", f"global batch {size.batch}, {'DDP, ' if count > 1 else ''}median of epochs 2-3")
    if dev.type == "cuda" and len(counts) == 1:
        print("  train     2 processes: not measured (one GPU)")
