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


def test_dvc_repro_end_to_end(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(REPO / "dvc.yaml", work)
    for folder in ("stages", "pipeline"):
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = tiny(load_params(REPO / "params.yaml"))
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    dvc(work, "init", "--no-scm", "-q")

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
