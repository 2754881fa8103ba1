"""Where each artifact lives (the paths dvc.yaml declares as deps and outs).

Large artifacts go under data/ (DVC's cache, never in git); the small files experiments are compared by (metrics,
training curves, the report, plots) go under results/, which git tracks, so `dvc exp show`, `dvc metrics diff`
and `dvc plots diff` can compare experiments and branches.

Every model a run trains has a name, which is its folder: `<arch>` (a models key, `cnn`, `ast`) for the
architecture trained on labels, `<arch>/part<j>` for its cross-fit part teachers, `<direction>/student`
(`forward/student`, `reverse/student`) for a distilled student. One stage trains (or dumps, or scores) every seed of
params `seeds` of a model in one split, each seed in its own folder of the stage's outs: a process starts once
for the seeds, not once a seed (torch, timm and DVC's bookkeeping cost seconds each time).

    data/raw/                                   prepare: manifest.csv, classes.txt (and the built-in dataset's audio)
    data/features.zarr, results/skipped.csv     features: one fbank store for every run; the clips left out
    results/stores/<front-end>.json             features: the store's content digest, which the code records carry
    results/code/stages/<stage>.json            code: the library files each stage runs, and their sha256
    results/code/models/<model>.json            code: the library files a model's family runs and the store it
                                                reads (<model>: an architecture, or a direction's role)
    data/runs/<split>/<arch>/seed<k>/checkpoint.pt             train@<arch>-<split>: trained on labels
    data/runs/<split>/<arch>/part<j>/seed<k>/checkpoint.pt     train@<arch>-<split>: cross-fit part teachers
    results/runs/<split>/<direction>/teacher/seed<k>.json      pick_teacher@<direction>-<split>
    data/runs/<split>/<direction>/cache/seed<k>.zarr           dump_logits@<direction>-<split>
    data/runs/<split>/<direction>/student/seed<k>/checkpoint.pt   train_student@<direction>-<split>
    data/held_out_logits/<split>/<name>/seed<k>.npz            train, train_student: the saved model's logits on
                                                               the test and validation clips (<name>: / as -)
    data/resume/<split>/<name>/seed<k>.pt                      a training's state after each epoch (no DVC out)
    results/runs/<split>/<name>/live/seed<k>/                  training curves (DVCLive: metrics.json, plots/)
    results/runs/<split>/<name>/scores/seed<k>/metrics.json, classes.json   evaluate: test metrics, per class
    results/runs/<split>/<direction>/cache/seed<k>/targets.json, coverage.json   dump_logits: the cached targets
    results/report.md, report.json, plots/, figures/   report: both directions, every run and seed

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


def store(frontend: str) -> Path:
    """The feature store of a front-end (pipeline/features/frontend.py): params `features`' fbank's is
    data/features.zarr, any other's data/frontends/<name>.zarr."""
    return FEATURES if frontend == "fbank" else DATA / "frontends" / f"{frontend}.zarr"


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
    """Cross-fit part teacher `part` (dump.cross_fit) of `arch`: trained by the stage that trains `arch`, in its
    folder."""
    return f"{arch}/part{part}"


def model_dir(name: str, split: str) -> Path:
    """Every seed's checkpoint of model `name` in run split `split` (one stage's out: it trains every seed)."""
    return DATA / "runs" / split / name


def checkpoint(name: str, run: Run) -> Path:
    return model_dir(name, run.split) / f"seed{run.seed}" / "checkpoint.pt"


def resume_state(name: str, run: Run) -> Path:
    """Written after every epoch and removed when training ends; outside every DVC out, so a re-run finds it."""
    return DATA / "resume" / run.split / name / f"seed{run.seed}.pt"


def teacher_pins(direction: str, split: str) -> Path:
    return RESULTS / "runs" / split / direction / "teacher"


def teacher_pin(direction: str, run: Run) -> Path:
    """The checkpoints that teach `direction` in `run` and their sha256 (stage pick_teacher), which the dump checks."""
    return teacher_pins(direction, run.split) / f"seed{run.seed}.json"


def caches(direction: str, split: str) -> Path:
    """Every seed's cached teacher predictions of `direction` (the dump's out)."""
    return DATA / "runs" / split / direction / "cache"


def predictions(direction: str, run: Run) -> Path:
    return caches(direction, run.split) / f"seed{run.seed}.zarr"


def held_out_dir(name: str, split: str) -> Path:
    return HELD_OUT_LOGITS / split / name.replace("/", "-")


def held_out_logits(name: str, run: Run) -> Path:
    """The saved model's logits on the test and validation clips (evaluation/held_out.py), which evaluate scores and
    the report resamples."""
    return held_out_dir(name, run.split) / f"seed{run.seed}.npz"


def results_dir(name: str, split: str) -> Path:
    return RESULTS / "runs" / split / name


def curves(name: str, split: str) -> Path:
    """Every seed's training curves (DVCLive) of model `name` (the training stage's plots; a part teacher's in its
    architecture's)."""
    arch, _, part = name.partition("/part")
    return results_dir(arch, split) / "live" / f"part{part}" if part else results_dir(name, split) / "live"


def live_dir(name: str, run: Run) -> Path:
    """The training curves, logged by DVCLive while the stage trains."""
    return curves(name, run.split) / f"seed{run.seed}"


def scores(name: str, split: str) -> Path:
    """Every seed's test metrics (the evaluation stage's metrics)."""
    return results_dir(name, split) / "scores"


def metrics(name: str, run: Run) -> Path:
    return scores(name, run.split) / f"seed{run.seed}" / "metrics.json"


def per_class(name: str, run: Run) -> Path:
    """Per-class test metrics (and the confusion counts of a single-label dataset) beside metrics.json."""
    return metrics(name, run).with_name("classes.json")


def cache_reports(direction: str, split: str) -> Path:
    """Every seed's cache statistics and coverage (the dump's metrics)."""
    return results_dir(direction, split) / "cache"


def target_statistics(direction: str, run: Run) -> Path:
    """Per split: the cached teacher's metrics and its targets' entropy and confidence (a DVC metrics file)."""
    return cache_reports(direction, run.split) / f"seed{run.seed}" / "targets.json"


def coverage(direction: str, run: Run) -> Path:
    """Which clips the cache holds: all for a teacher's dump; for imported predictions, matched / missing / unknown."""
    return target_statistics(direction, run).with_name("coverage.json")


def prune_seeds(folder: Path, seeds: list[int]) -> None:
    """Remove what `folder` (a stage's out, kept between runs: DVC's `persist`) holds of seeds params no longer
    lists: `seed<k>` folders and `seed<k>.*` files."""
    import shutil

    keep = {f"seed{seed}" for seed in seeds}
    for entry in Path(folder).glob("seed*"):
        if entry.name.split(".")[0] not in keep:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def prune_parts(folder: Path, parts: int) -> None:
    """Remove the `part<j>` folders of cross-fit part teachers beyond the `parts` params now asks for."""
    import shutil

    for entry in Path(folder).glob("part*"):
        if entry.is_dir() and entry.name[4:].isdigit() and int(entry.name[4:]) >= parts:
            shutil.rmtree(entry)
