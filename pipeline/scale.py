"""`cmkd scale`: the whole pipeline at AudioSet's shape on one machine, measured stage by stage as it grows.

It lays out a dataset in the AST recipe's format (a JSON data file per split, AudioSet's class index) with
AudioSet's real labels: the label sets of the balanced-train clips for training and of the evaluation clips for the
test split, in their files' order, 527 classes with their long tail; for each clip 10 s of 16 kHz audio made for its
label set (one sound a class: a kind and a pitch, at a random time and level over noise). Then a DVC project of
this repository's dvc.yaml and stages runs `dvc repro` one stage at a time, test-size models for `epochs`, the
training on the loader path (`train.resident: false`, whose memory must not grow with the store) unless
`resident` is set, and records per stage: wall time, clips per second, peak resident memory (the largest among the
stage's processes), and the bytes on disk per clip of what it wrote. `cmkd check` and `cmkd inspect` of both stores
are timed too. `cmkd scale-table` turns the measurements into docs/scaling.md's table (each size, the commands).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import layout
from .codedeps import ROOT
from .prepare.synthetic import KINDS, _background, _event
from .runs import Run

SAMPLE_RATE, SECONDS = 16000, 10.0
SPLITS = {"train": "balanced_train_segments.csv", "test": "eval_segments.csv"}


def label_sets(meta: Path, split: str, count: int) -> list[tuple[str, list[str]]]:
    """The first `count` clips of an AudioSet segments file: (YouTube id, its label mids)."""
    with open(meta / SPLITS[split], newline="") as f:
        rows = [r for r in csv.reader(f, skipinitialspace=True) if r and not r[0].startswith("#")][1:]
    if count > len(rows):
        raise ValueError(f"{meta / SPLITS[split]}: {len(rows)} clips, {count} asked for")
    return [(r[0], r[3].split(",")) for r in rows[:count]]


def class_sound(index: int, classes: int = 527) -> tuple[str, float]:
    """A class's sound: one of the built-in kinds, at a pitch of its own (log-spaced over 150 Hz..6 kHz)."""
    return KINDS[index % len(KINDS)], float(150 * (6000 / 150) ** ((index // len(KINDS)) / (classes // len(KINDS))))


def synthesize(class_ids: list[int], rng: np.random.Generator) -> np.ndarray:
    n = int(SAMPLE_RATE * SECONDS)
    noise = 0.02 * 2 ** rng.uniform(-1, 1)
    clip = noise * _background(n, rng)
    for c in class_ids:
        kind, f0 = class_sound(c)
        length = int(rng.uniform(0.5, 4.0) * SAMPLE_RATE)
        onset = int(rng.integers(0, n - length + 1))
        clip[onset : onset + length] += noise * 10 ** (rng.uniform(3, 20) / 20) * _event(
            kind, f0 * 2 ** rng.uniform(-0.2, 0.2), length, SAMPLE_RATE, rng)
    return (clip * min(1.0, 0.95 / np.abs(clip).max())).astype(np.float32)


def _write_clips(args: tuple) -> None:
    import soundfile as sf

    folder, items, index_of, seed = args
    for i, (ytid, mids) in items:
        rng = np.random.default_rng([seed, i])
        sf.write(folder / f"Y{ytid}.wav", synthesize([index_of[m] for m in mids], rng), SAMPLE_RATE, subtype="PCM_16")


def lay_out(root: Path, meta: Path, clips: int, seed: int = 0, workers: int = 2) -> dict[str, Path]:
    """root/audio/*.wav and root/{train,test}.json (the AST recipe's data files) for `clips` clips: 70 % from the
    balanced-train label sets, the rest from the evaluation set's. Returns the data files."""
    from concurrent.futures import ProcessPoolExecutor

    with open(meta / "class_labels_indices.csv", newline="") as f:
        index_of = {r["mid"]: int(r["index"]) for r in csv.DictReader(f)}
    train = min(int(round(0.7 * clips)), 22160)
    wanted = {"train": label_sets(meta, "train", train), "test": label_sets(meta, "test", clips - train)}
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in wanted.items():
        files[split] = root / f"{split}.json"
        files[split].write_text(json.dumps({"data": [{"wav": f"audio/Y{ytid}.wav", "labels": ",".join(mids)}
                                                     for ytid, mids in rows]}))
    todo = [(i, row) for i, row in enumerate(wanted["train"] + wanted["test"])
            if not (audio / f"Y{row[0]}.wav").exists()]
    chunks = [(audio, todo[k::workers * 8], index_of, seed) for k in range(workers * 8)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_clips, chunks))
    return files


def params(files: dict[str, Path], meta: Path, epochs: int, resident) -> dict:
    """This repository's params.yaml with the AudioSet-shaped run's settings over it."""
    from .presets import merged
    from .settings import read_yaml

    return merged(read_yaml(ROOT / "params.yaml"), {
        "runs": ["main"], "seeds": [0], "teacher": "cnn", "student": "ast", "directions": ["forward"],
        "data": {"source": "audioset", "multi_label": True, "split": {"val": 0.05, "test": 0.0},
                 "audioset": {"train": str(files["train"]), "test": str(files["test"]),
                              "class_index": str(meta / "class_labels_indices.csv")}},
        "features": {"target_frames": 1024, "clips_per_shard": 64, "workers": 2, "scheduler": "processes"},
        "models": {"cnn": {"name": "efficientnet_test", "epochs": epochs, "lr": 1e-3},
                   "ast": {"name": "ast_test", "fstride": 16, "tstride": 16, "epochs": epochs, "lr": 1e-3}},
        "augment": {"freq_mask": 24, "time_mask": 96, "mixup": 0.5},
        "train": {"batch_size": 32, "warmup_steps": 50, "resident": resident, "num_workers": 1},
        "dump": {"batch_size": 64, "num_workers": 1},
    })


def make_project(work: Path, settings: dict) -> None:
    """A git + DVC project of this repository's dvc.yaml, stages and library, DVC's cache linked, not copied."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, work)
    for folder in ("stages", "pipeline"):
        shutil.rmtree(work / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "params.yaml").write_text(json.dumps(settings, indent=1))  # JSON is YAML
    identity = {"GIT_AUTHOR_NAME": "cmkd scale", "GIT_AUTHOR_EMAIL": "scale@cmkd", "GIT_COMMITTER_NAME": "cmkd scale",
                "GIT_COMMITTER_EMAIL": "scale@cmkd"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q", "-f"],
                    ["dvc", "config", "cache.type", "hardlink,symlink"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "AudioSet-shaped project"]):
        subprocess.run(command, cwd=work, check=True, capture_output=True, env={**os.environ, **identity})


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(seconds, peak resident MB, output) of one command. The peak is /usr/bin/time's %M: the largest peak RSS of
    any one of the command's processes (ru_maxrss), not the sum over them."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "PEAK_RSS_KB %M", *command], cwd=cwd, capture_output=True,
                            text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    seconds = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    peak = next(int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return seconds, peak / 1024, result.stdout + result.stderr


def disk_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def run_scale(clips: int, meta: Path, workdir: Path, epochs: int = 1, resident="false", seed: int = 0,
              out: Path | None = None) -> dict:
    """Lay out `clips` clips, run every stage and the audit commands, and return (and write) the measurements."""
    workdir = Path(workdir)
    started = time.perf_counter()
    files = lay_out(workdir / "dataset", Path(meta), clips, seed)
    layout_seconds = time.perf_counter() - started
    work = workdir / "project"
    resident = {"false": False, "true": True}.get(str(resident), resident)
    make_project(work, params(files, Path(meta).resolve(), epochs, resident))
    stages = subprocess.run(["dvc", "stage", "list", "--names-only"], cwd=work, check=True, capture_output=True,
                            text=True).stdout.split()
    rows = [{"step": "lay out the dataset (audio + JSON)", "seconds": round(layout_seconds, 1), "clips": clips,
             "disk_bytes_per_clip": round(disk_bytes([workdir / "dataset"]) / clips)}]
    cache = str(layout.predictions("forward", Run("main", 0)))
    outs = {"prepare": ["data/raw"], "features": ["data/features.zarr"],
            "train@cnn-main": [str(layout.model_dir("cnn", "main"))],
            "train@ast-main": [str(layout.model_dir("ast", "main"))], "dump_logits@forward-main": [cache],
            "train_student@forward-main": [str(layout.model_dir(layout.student_model("forward"), "main"))]}
    for stage in stages:
        seconds, peak, log = timed(["dvc", "repro", "--single-item", stage], work)
        rows.append({"step": stage, "seconds": round(seconds, 1), "clips_per_s": round(clips / seconds, 1),
                     "peak_rss_mb": round(peak), "clips": clips,
                     "disk_bytes_per_clip": round(disk_bytes([work / p for p in outs.get(stage, [])]) / clips),
                     **({"store path": next((line.split(": ", 1)[1] for line in log.splitlines()
                                              if line.startswith("store path: ")), "?")}
                        if stage.startswith("train") else {})})
        print(json.dumps(rows[-1]), flush=True)
    cmkd = [sys.executable, "-m", "pipeline.cli"]
    for name, command in (("cmkd check", [*cmkd, "check", "--json"]),
                          ("cmkd inspect data/features.zarr", [*cmkd, "inspect", "data/features.zarr", "--json"]),
                          ("cmkd inspect the teacher predictions", [*cmkd, "inspect", "--json", cache])):
        seconds, peak, _ = timed(command, work)
        rows.append({"step": name, "seconds": round(seconds, 1), "clips_per_s": round(clips / seconds, 1),
                     "peak_rss_mb": round(peak), "clips": clips})
        print(json.dumps(rows[-1]), flush=True)
    report = {"clips": clips, "epochs": epochs, "resident": resident, "cpu_count": os.cpu_count(),
              "rows": rows}
    if out:
        Path(out).write_text(json.dumps(report, indent=1) + "\n")
    return report


def markdown_table(reports: list[dict]) -> str:
    """docs/scaling.md's table from `run_scale` reports: per step and size the wall time, peak memory, bytes on
    disk per clip (and the store path a training took), then the per-clip time at the largest size over the
    smallest's."""
    reports = sorted(reports, key=lambda r: r["clips"])
    steps = list(dict.fromkeys(row["step"] for r in reports for row in r["rows"]))
    first_code = next((s for s in steps if s.startswith("model_code@")), None)  # (older reports' six, alike)
    steps = [s for s in steps if not s.startswith("model_code@") or s == first_code]
    small, large = reports[0], reports[-1]

    def row_of(report: dict, step: str) -> dict | None:
        return next((row for row in report["rows"] if row["step"] == step), None)

    def cell(row: dict | None) -> str:
        if row is None:
            return "-"
        parts = [f"{row['seconds']:g} s"]
        parts += [f"{row['peak_rss_mb']:,} MB"] if row.get("peak_rss_mb") is not None else []
        parts += [f"{row['disk_bytes_per_clip']:,} B/clip"] if row.get("disk_bytes_per_clip") else []
        parts += [row["store path"].split(" ")[0]] if row.get("store path") else []
        return ", ".join(parts)

    def per_clip(step: str) -> str:
        a, b = row_of(small, step), row_of(large, step)
        if not a or not b or not a["seconds"]:
            return "-"
        return f"{(b['seconds'] / large['clips']) / (a['seconds'] / small['clips']):.2f}"

    lines = ["| step | " + " | ".join(f"{r['clips']:,} clips" for r in reports)
             + f" | per clip, {large['clips']:,} / {small['clips']:,} |", "|---|" + "---|" * (len(reports) + 1)]
    for step in steps:
        name = "model_code (each of 6)" if step.startswith("model_code@") else step
        lines.append(f"| {name} | " + " | ".join(cell(row_of(r, step)) for r in reports) + f" | {per_clip(step)} |")
    return "\n".join(lines) + "\n"
