"""End to end: the real `dvc repro` on a tiny configuration, then DVC's caching behaviour."""
import json
import os
import re
import shutil
import subprocess

import yaml

from .conftest import REPO, tiny
from pipeline.params import load_params

PER_RUN = ("train_teacher", "evaluate_teacher", "dump_logits", "train_student", "train_baseline", "evaluate_student",
           "evaluate_baseline")
ALL_STAGES = {"prepare", "features", "report"} | {f"{stage}@main" for stage in PER_RUN}


def dvc(work, *args) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(["dvc", *args], cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w@.-]+)'", output))


def make_project(tmp_path, params: dict):
    """A DVC project holding this repo's dvc.yaml, stages and library, with `params`."""
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(REPO / "dvc.yaml", work)
    for folder in ("stages", "pipeline"):
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    dvc(work, "init", "--no-scm", "-q")
    return work


def test_dvc_repro_end_to_end(tmp_path):
    params = tiny(load_params(REPO / "params.yaml"))
    work = make_project(tmp_path, params)

    assert stages_run(dvc(work, "repro")) == ALL_STAGES
    report = (work / "data/report.md").read_text()
    assert "**cnn (efficientnet_test) -> ast (ast_test)**" in report and "| main | 8 |" in report
    metrics = json.loads(dvc(work, "metrics", "show", "--json"))
    shown = json.dumps(metrics)
    for role in ("teacher", "student", "baseline"):
        assert f"data/metrics/main/{role}.json" in shown
    assert '"accuracy"' in shown and "data/report.json" in shown

    assert stages_run(dvc(work, "repro")) == set()  # nothing changed, nothing runs

    params["distill"]["lambda"] = 0.3
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    assert stages_run(dvc(work, "repro")) == {"train_student@main", "evaluate_student@main", "report"}


def test_dvc_repro_cross_validation_over_folds(tmp_path):
    """ESC-50's layout (built tiny) with runs fold1..fold3: every per-run stage once per fold, the report averaged."""
    from .test_datasets import make_esc50

    make_esc50(tmp_path / "esc50", folds=3)
    params = tiny(load_params(REPO / "params.yaml"))
    params["runs"] = ["fold1", "fold2", "fold3"]
    params["data"].update(source="esc50", root=str(tmp_path / "esc50"), split={"val": 0.3, "test": 0.0})
    params["features"].update(target_frames=50, clips_per_shard=8)
    params["train"]["batch_size"] = 4
    work = make_project(tmp_path, params)

    runs = {"fold1", "fold2", "fold3"}
    assert stages_run(dvc(work, "repro")) == {"prepare", "features", "report"} | {
        f"{stage}@{run}" for stage in PER_RUN for run in runs}
    summary = json.loads((work / "data/report.json").read_text())
    assert summary["runs"] == ["fold1", "fold2", "fold3"]
    for role in ("teacher", "baseline", "student"):
        per_run = [summary["per_run"][run][role]["accuracy"] for run in summary["runs"]]
        assert summary["mean"][role]["accuracy"] == sum(per_run) / 3
    for run in runs:
        assert json.loads((work / f"data/metrics/{run}/teacher.json").read_text())["clips"] == 6  # fold = test set
    report = (work / "data/report.md").read_text()
    assert "| fold2 | 6 |" in report and "**mean**" in report
