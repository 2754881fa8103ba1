"""End to end: the real `dvc repro` over two folds of a tiny ESC-50 layout, DVC's caching behaviour, and DVC's
experiment workflow (`dvc exp run -S`, `dvc exp show`, `dvc plots show`) in a git repository, as a user runs it."""
import json
import os
import re
import shutil
import subprocess

import yaml

from pipeline.settings import read_yaml

from .conftest import REPO, tiny

PER_RUN = ("train_teacher", "evaluate_teacher", "dump_logits", "train_student", "train_baseline", "evaluate_student",
           "evaluate_baseline")


def run(work, *args) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w@.-]+)'", output))


def make_project(tmp_path, params: dict):
    """A git + DVC project holding this repo's dvc.yaml, stages and library, with `params`."""
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(REPO / "dvc.yaml", work)
    shutil.copy(REPO / ".gitignore", work)
    for folder in ("stages", "pipeline"):
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    run(work, "git", "init", "-q")
    run(work, "dvc", "init", "-q")
    run(work, "git", "add", "-A")
    run(work, "git", "commit", "-qm", "project")
    return work


def test_dvc_repro_over_folds_and_experiments(tmp_path):
    from .test_datasets import make_esc50

    make_esc50(tmp_path / "esc50", folds=2)
    params = tiny(read_yaml(REPO / "params.yaml"))
    params["runs"] = ["fold1", "fold2"]
    params["data"].update(source="esc50", root=str(tmp_path / "esc50"), split={"val": 0.3, "test": 0.0})
    params["features"].update(target_frames=50, clips_per_shard=8)
    params["train"]["batch_size"] = 4
    work = make_project(tmp_path, params)

    runs = ("fold1-0", "fold2-0")
    assert stages_run(run(work, "dvc", "repro")) == {"prepare", "features", "report"} | {
        f"{stage}@{r}" for stage in PER_RUN for r in runs}
    summary = json.loads((work / "results/report.json").read_text())
    assert summary["runs"] == 2
    for role in ("teacher", "baseline", "student"):
        per_run = [json.loads((work / f"results/runs/{f}/seed0/{role}/metrics.json").read_text()) for f in ("fold1", "fold2")]
        assert all(m["clips"] == 6 for m in per_run)  # a fold is the test set
        assert summary["mean"][role]["accuracy"] == sum(m["accuracy"] for m in per_run) / 2
    report = (work / "results/report.md").read_text()
    assert "| fold2 | 0 | 6 |" in report and "**mean**" in report and "Student minus baseline" in report
    shown = run(work, "dvc", "metrics", "show", "--json")
    assert "results/report.json" in shown and "results/runs/fold1/seed0/student/metrics.json" in shown

    # the small results are git's, the large artifacts DVC's: commit, and nothing is left to run
    run(work, "git", "add", "-A")
    assert "data/features.zarr" not in run(work, "git", "status", "--porcelain", "--ignored")  # ignored, not tracked
    run(work, "git", "commit", "-qm", "repro")
    assert stages_run(run(work, "dvc", "repro")) == set()

    # an experiment re-runs exactly the student's stages and is compared with main by dvc exp show
    ran = stages_run(run(work, "dvc", "exp", "run", "-S", "distill.lambda=0.3", "-n", "lambda03"))
    assert ran == {"report"} | {f"{stage}@{r}" for stage in ("train_student", "evaluate_student") for r in runs}
    table = json.loads(run(work, "dvc", "exp", "show", "--json"))
    rows = {(exp.get("name") or exp.get("rev")): exp for entry in table for exp in [entry, *(e for x in entry.get(
        "experiments") or [] for e in x.get("revs", []))]}
    for name in ("lambda03", "workspace"):
        metrics = rows[name]["data"]["metrics"]["results/report.json"]["data"]
        assert set(metrics["mean"]) == {"teacher", "baseline", "student"}, name
    assert rows["lambda03"]["data"]["params"]["params.yaml"]["data"]["distill"]["lambda"] == 0.3

    # dvc plots: the three roles' validation curves on one chart, the confusion matrix, per-class values
    plots = json.loads(run(work, "dvc", "plots", "show", "--json"))
    ids = set(plots.get("data", plots))
    assert {"validation", "confusion", "per_class"} <= ids, ids
    assert any("results/runs/fold1/seed0/student/live/plots/metrics/val/accuracy.tsv" in i for i in ids)
    curves = (work / "results/plots/validation.csv").read_text().splitlines()
    assert curves[0] == "epoch,teacher,baseline,student" and len(curves) == 1 + 2
