"""Where each artifact lives (the paths dvc.yaml declares as deps and outs).

Large artifacts go under data/ (DVC's cache, never in git); the small files experiments are compared by (metrics,
training curves, the report, plots) go under results/, which git tracks, so `dvc exp show`, `dvc metrics diff`
and `dvc plots diff` can compare experiments and branches.

    data/raw/                                  prepare: manifest.csv, classes.txt (and the built-in dataset's audio)
    data/features.zarr, results/skipped.csv    features: one fbank store for every run; the clips left out
    data/runs/<split>/seed<k>/teacher/checkpoint.pt            train_teacher@<split>-<k>
    data/runs/<split>/seed<k>/teacher/parts/part<j>.pt         train_teacher_part@<split>-<k>-<j> (dump.cross_fit)
    data/runs/<split>/seed<k>/teacher_predictions.zarr         dump_logits@<split>-<k>: the cached teacher outputs
    results/runs/<split>/seed<k>/teacher/targets.json          dump_logits@<split>-<k>: what those targets hold
    results/runs/<split>/seed<k>/teacher/coverage.json         dump_logits@<split>-<k>: which clips are cached
    data/runs/<split>/seed<k>/{student,baseline}/checkpoint.pt train_student, train_baseline
    results/runs/<split>/seed<k>/<role>/live/       training curves (DVCLive: metrics.json, plots/metrics/*.tsv)
    results/runs/<split>/seed<k>/<role>/metrics.json, classes.json  evaluate_<role>: test-split metrics, per class
    results/report.md, report.json, plots/     report: every run and seed, means, paired differences, plot data

A run (pipeline/runs.py) is one teacher -> cache -> student chain over one split and one seed.
"""
from pathlib import Path

from .runs import Run

DATA = Path("data")
RAW = DATA / "raw"
MANIFEST = RAW / "manifest.csv"
CLASSES = RAW / "classes.txt"
FEATURES = DATA / "features.zarr"
RESULTS = Path("results")
SKIPPED = RESULTS / "skipped.csv"  # small, in git: an experiment's copy of the repo must find it
REPORT = RESULTS / "report.md"
REPORT_JSON = RESULTS / "report.json"
PLOTS = RESULTS / "plots"


def run_dir(run: Run) -> Path:
    return DATA / "runs" / run.folder


def role_dir(role: str, run: Run) -> Path:
    return run_dir(run) / role


def checkpoint(role: str, run: Run) -> Path:
    return role_dir(role, run) / "checkpoint.pt"


def predictions(run: Run) -> Path:
    return run_dir(run) / "teacher_predictions.zarr"


def part_checkpoint(run: Run, part: int) -> Path:
    """Cross-fit teacher `part` (dump.cross_fit), inside the teacher's folder, which the dump stage depends on."""
    return role_dir("teacher", run) / "parts" / f"part{part}.pt"


def part_live_dir(run: Run, part: int) -> Path:
    return results_dir("teacher", run) / "parts" / f"part{part}" / "live"


def part_resume_state(run: Run, part: int) -> Path:
    return run_dir(run) / f"teacher_part{part}.resume.pt"


def target_statistics(run: Run) -> Path:
    """Per split: the cached teacher's metrics and its targets' entropy and confidence (a DVC metrics file)."""
    return results_dir("teacher", run) / "targets.json"


def coverage(run: Run) -> Path:
    """Which clips the cache holds: all for a teacher's dump; for imported predictions, matched / missing / unknown."""
    return results_dir("teacher", run) / "coverage.json"


def resume_state(role: str, run: Run) -> Path:
    """Written after every epoch and removed when training ends; not a DVC out, so DVC leaves it for a re-run."""
    return run_dir(run) / f"{role}.resume.pt"


def results_dir(role: str, run: Run) -> Path:
    return RESULTS / "runs" / run.folder / role


def live_dir(role: str, run: Run) -> Path:
    """The training curves, logged by DVCLive while the stage trains."""
    return results_dir(role, run) / "live"


def metrics(role: str, run: Run) -> Path:
    return results_dir(role, run) / "metrics.json"


def per_class(role: str, run: Run) -> Path:
    """Per-class test metrics (and the confusion counts of a single-label dataset) beside metrics.json."""
    return results_dir(role, run) / "classes.json"
