"""Where each artifact lives under data/ (the paths dvc.yaml declares as deps and outs).

    data/raw/                      stage prepare: manifest.csv, classes.txt (and the built-in dataset's audio)
    data/features.zarr             stage features: one fbank store for every clip, whatever the run
    data/skipped.csv               stage features: the clips it left out, and why (features.on_error: skip)
    data/runs/<run>/teacher/       stage train_teacher@<run>: checkpoint.pt, history.csv
    data/runs/<run>/teacher_predictions.zarr   stage dump_logits@<run>: the cached teacher outputs
    data/runs/<run>/student/       stage train_student@<run> (and baseline/, train_baseline@<run>)
    data/metrics/<run>/<role>.json stages evaluate_*@<run>: test-split metrics
    data/report.md, report.json    stage report: every run, and the mean over runs

A run is one teacher -> cache -> student chain over one train/val/test split (pipeline/runs.py).
"""
from pathlib import Path

DATA = Path("data")
RAW = DATA / "raw"
MANIFEST = RAW / "manifest.csv"
CLASSES = RAW / "classes.txt"
FEATURES = DATA / "features.zarr"
SKIPPED = DATA / "skipped.csv"           # stage features: clips left out by features.on_error: skip
METRICS = DATA / "metrics"
REPORT = DATA / "report.md"
REPORT_JSON = DATA / "report.json"


def run_dir(run: str) -> Path:
    return DATA / "runs" / run


def role_dir(role: str, run: str) -> Path:
    """data/runs/<run>/teacher, student, baseline: checkpoint.pt, history.csv."""
    return run_dir(run) / role


def checkpoint(role: str, run: str) -> Path:
    return role_dir(role, run) / "checkpoint.pt"


def history(role: str, run: str) -> Path:
    return role_dir(role, run) / "history.csv"


def predictions(run: str) -> Path:
    return run_dir(run) / "teacher_predictions.zarr"


def metrics(role: str, run: str) -> Path:
    return METRICS / run / f"{role}.json"


def resume_state(role: str, run: str) -> Path:
    """Written after every epoch and removed when training ends; not a DVC out, so DVC leaves it for a re-run."""
    return run_dir(run) / f"{role}.resume.pt"
