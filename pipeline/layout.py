"""Where each artifact lives (the paths dvc.yaml declares as deps and outs).

Large artifacts go under data/ (DVC's cache, never in git); the small files experiments are compared by (metrics,
training curves, the report, plots) go under results/, which git tracks, so `dvc exp show`, `dvc metrics diff`
and `dvc plots diff` can compare experiments and branches.

Every model a run trains has a name, which is its folder below the run's: `<arch>` (a models key, `cnn`, `ast`)
for the architecture trained on labels, `<arch>/parts/part<j>` for its cross-fit part teachers, `<direction>/student`
(`forward/student`, `reverse/student`) for a distilled student.

    results/code/models/<model>.json            code: the library files a model's family runs and the store it
                                                reads (<model>: an architecture, or a direction's role:
                                                forward-teacher, ...)
    data/raw/                                   prepare: manifest.csv, classes.txt (and the built-in dataset's audio)
    data/features.zarr, results/skipped.csv     features: one fbank store for every run; the clips left out
    results/stores/<front-end>.json             features: the store's content digest, which the code records carry
    results/code/stages/<stage>.json            code: the library files each stage runs, and their sha256
    data/runs/<split>/seed<k>/<arch>/checkpoint.pt                   train@<arch>-<split>-<k>: trained on labels
    data/runs/<split>/seed<k>/<arch>/parts/part<j>/checkpoint.pt     train_teacher_part@<arch>-<split>-<k>-<j>
    results/runs/<split>/seed<k>/<direction>/teacher.json            pick_teacher@<direction>-<split>-<k>
    data/runs/<split>/seed<k>/<direction>/teacher_predictions.zarr   dump_logits@<direction>-<split>-<k>
    data/runs/<split>/seed<k>/<direction>/student/checkpoint.pt      train_student@<direction>-<split>-<k>
    data/held_out_logits/<split>/seed<k>/<name>.npz                  train, train_student: the saved model's logits
                                                                     on the test and validation clips
    results/runs/<split>/seed<k>/<name>/live/              training curves (DVCLive: metrics.json, plots/metrics/)
    results/runs/<split>/seed<k>/<name>/metrics.json, classes.json   evaluate: test-split metrics, per class
    results/runs/<split>/seed<k>/<direction>/targets.json, coverage.json   dump_logits: what the cached targets hold
    results/report.md, report.json, plots/      report: both directions, every run and seed, paired differences

A run (pipeline/runs.py) is one split and one seed.
"""
from pathlib import Path

from .runs import Run

DATA = Path("data")
RAW = DATA / "raw"
MANIFEST = RAW / "manifest.csv"
CLASSES = RAW / "classes.txt"
FEATURES = DATA / "features.zarr"
HELD_OUT_LOGITS = DATA / "held_out_logits"
RESULTS = Path("results")
SKIPPED = RESULTS / "skipped.csv"  # small, in git: an experiment's copy of the repo must find it
REPORT = RESULTS / "report.md"
REPORT_JSON = RESULTS / "report.json"
PLOTS = RESULTS / "plots"
FIGURES = RESULTS / "figures"


STORES = RESULTS / "stores"
CODE = RESULTS / "code"


def store_record(frontend: str) -> Path:
    """The content digest of the feature store of `frontend` (stage features), which the code records carry."""
    return STORES / f"{frontend}.json"


def code_record(model: str) -> Path:
    """The files (and their sha256) the family of a model runs and the store it reads, which the stages building it
    depend on (pipeline/codedeps.py): `model` an architecture (`cnn`) or a direction's role (`forward-teacher`)."""
    return CODE / "models" / f"{model}.json"


def stage_record(stage: str) -> Path:
    """The files (and their sha256) a stage's script runs (pipeline/codedeps.py), which the stage depends on."""
    return CODE / "stages" / f"{stage}.json"


def labels_model(arch: str) -> str:
    """The name of the model of architecture `arch` trained on labels alone (a teacher, and a baseline)."""
    return arch


def student_model(direction: str) -> str:
    return f"{direction}/student"


def part_model(arch: str, part: int) -> str:
    """Cross-fit part teacher `part` (dump.cross_fit) of `arch`, in its folder, which the dump depends on."""
    return f"{arch}/parts/part{part}"


def run_dir(run: Run) -> Path:
    return DATA / "runs" / run.folder


def checkpoint(name: str, run: Run) -> Path:
    return run_dir(run) / name / "checkpoint.pt"


def resume_state(name: str, run: Run) -> Path:
    """Written after every epoch and removed when training ends; not a DVC out, so DVC leaves it for a re-run."""
    return run_dir(run) / f"{name}.resume.pt"


def teacher_pin(direction: str, run: Run) -> Path:
    """The checkpoints that teach `direction` in `run` and their sha256 (stage pick_teacher), which the dump checks."""
    return results_dir(direction, run) / "teacher.json"


def predictions(direction: str, run: Run) -> Path:
    return run_dir(run) / direction / "teacher_predictions.zarr"


def held_out_logits(name: str, run: Run) -> Path:
    """The saved model's logits on the test and validation clips (evaluation/held_out.py), which evaluate scores and
    the report resamples."""
    return HELD_OUT_LOGITS / run.folder / f"{name.replace('/', '-')}.npz"


def results_dir(name: str, run: Run) -> Path:
    return RESULTS / "runs" / run.folder / name


def live_dir(name: str, run: Run) -> Path:
    """The training curves, logged by DVCLive while the stage trains."""
    return results_dir(name, run) / "live"


def metrics(name: str, run: Run) -> Path:
    return results_dir(name, run) / "metrics.json"


def per_class(name: str, run: Run) -> Path:
    """Per-class test metrics (and the confusion counts of a single-label dataset) beside metrics.json."""
    return results_dir(name, run) / "classes.json"


def target_statistics(direction: str, run: Run) -> Path:
    """Per split: the cached teacher's metrics and its targets' entropy and confidence (a DVC metrics file)."""
    return results_dir(direction, run) / "targets.json"


def coverage(direction: str, run: Run) -> Path:
    """Which clips the cache holds: all for a teacher's dump; for imported predictions, matched / missing / unknown."""
    return results_dir(direction, run) / "coverage.json"
