"""Where each artifact lives under data/ (the paths dvc.yaml declares as deps and outs)."""
from pathlib import Path

DATA = Path("data")
RAW = DATA / "raw"                       # stage prepare: audio/, manifest.csv, classes.txt
MANIFEST = RAW / "manifest.csv"
CLASSES = RAW / "classes.txt"
FEATURES = DATA / "features.zarr"        # stage features
PREDICTIONS = DATA / "teacher_predictions.zarr"  # stage dump_logits
REPORT = DATA / "report.md"              # stage report


def role_dir(role: str) -> Path:
    """data/teacher, data/student, data/baseline: checkpoint.pt, history.csv, metrics.json."""
    return DATA / role


def checkpoint(role: str) -> Path:
    return role_dir(role) / "checkpoint.pt"


def history(role: str) -> Path:
    return role_dir(role) / "history.csv"


def metrics(role: str) -> Path:
    return role_dir(role) / "metrics.json"


def resume_state(role: str) -> Path:
    """Written after every epoch and removed when training ends; not a DVC out, so DVC leaves it for a re-run."""
    return role_dir(role) / "resume.pt"
