"""A scratch DVC project of this repository, for the tests that ask DVC which stages a change re-runs
(tests/test_change_reruns.py, tests/test_one_place.py).

The project holds this repository's dvc.yaml, stages and library, tiny params with both directions, and one run.
Stage code's records are written as it writes them; every other stage's outputs are placeholders committed to
dvc.lock (`dvc commit`), since what is checked is DVC's dependency graph, not the outputs. `marked` is `dvc status`
in this process.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from pipeline.codedeps import ROOT, write_records
from pipeline.models import family_frontend
from pipeline.settings import read_yaml

from .conftest import tiny

RUN = "main"
ARCH = {"cnn", "ast"}
ROLES = ("forward-teacher", "forward-student", "reverse-teacher", "reverse-student")
CODE = {"code"}
TRAIN = {f"train@{a}-{RUN}" for a in ARCH}
EVALUATE = {f"evaluate@{a}-{RUN}" for a in ARCH}
DUMP = {f"dump_logits@{d}-{RUN}" for d in ("forward", "reverse")}
PICK = {f"pick_teacher@{d}-{RUN}" for d in ("forward", "reverse")}
STUDENT = {f"train_student@{d}-{RUN}" for d in ("forward", "reverse")}
EVAL_STUDENT = {f"evaluate_student@{d}-{RUN}" for d in ("forward", "reverse")}
BUILDS_MODEL = TRAIN | DUMP | STUDENT  # the evaluations score the logits a training kept, without its model
EVERY_MODEL = BUILDS_MODEL | EVALUATE | EVAL_STUDENT
AFTER_FEATURES = EVERY_MODEL | CODE
ALL = {"prepare", "features", "report"} | AFTER_FEATURES | PICK


def placeholder(path: Path) -> None:
    """A stand-in output: a file (JSON where it is one: stage code reads the store's record), or a folder holding
    one (outputs whose names have no suffix are folders)."""
    if path.suffix in (".pt", ".json", ".csv", ".npz", ".md", ".onnx"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"placeholder": true}\n' if path.suffix == ".json" else "placeholder\n")
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / "placeholder").write_text("placeholder\n")


def make_project(work: Path, **overrides):
    """The scratch project in `work` (params `overrides` over the tiny ones: `models`, `frontends`), every stage up
    to date; returns DVC's Repo of it."""
    from dvc.repo import Repo

    cache_dvc_yaml_parses()
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, work)
    for folder in ("stages", "pipeline"):
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = {**tiny(read_yaml(ROOT / "params.yaml")), "directions": ["forward", "reverse"]}
    for key, value in overrides.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=work, check=True, capture_output=True)
    repo = Repo(str(work))
    for stage in repo.index.stages:
        if stage.name != "code":
            for out in stage.outs:
                placeholder(Path(out.fs_path))
    rewrite_records(work)
    subprocess.run(["dvc", "commit", "-f", "-q"], cwd=work, check=True, capture_output=True)
    assert marked(repo) == set()
    return repo


def marked(repo) -> set[str]:
    """The stages `dvc status` marks (in this process: half a second each, where a `dvc` command takes several)."""
    cwd = os.getcwd()
    os.chdir(repo.root_dir)
    try:
        return set(repo.status())
    finally:
        os.chdir(cwd)


def rewrite_records(work: Path) -> None:
    """What stage code writes (its own function), from the project's library and params."""
    params = read_yaml(work / "params.yaml")
    teacher, student = params["teacher"], params["student"]
    roles = {teacher: teacher, student: student, "forward-teacher": teacher, "forward-student": student,
             "reverse-teacher": student, "reverse-student": teacher}
    names = {arch: params["models"][arch]["name"] for arch in (teacher, student)}
    stores = {arch: json.loads((work / f"results/stores/{family_frontend(name)}.json").read_text())
              for arch, name in names.items()}
    write_records({model: (arch, names[arch]) for model, arch in roles.items()}, stores, work)


_PARSED: dict = {}


def cache_dvc_yaml_parses() -> None:
    """DVC parses dvc.yaml and dvc.lock with pure-Python ruamel.yaml some twenty times per `status`: two thirds of
    its time. The same text always parses to the same tree, so each text is parsed once and a copy handed out."""
    import dvc.utils.serialize._yaml as dvc_yaml

    original = getattr(dvc_yaml.parse_yaml, "__wrapped__", dvc_yaml.parse_yaml)

    def parse_yaml(text, path, typ="safe"):
        key = (text, typ)
        if key not in _PARSED:
            _PARSED[key] = original(text, path, typ)
        return copy.deepcopy(_PARSED[key])

    parse_yaml.__wrapped__ = original
    for module in (dvc_yaml, *_importers_of(original)):
        module.parse_yaml = parse_yaml


def _importers_of(function) -> list:
    import sys

    return [m for m in list(sys.modules.values()) if getattr(m, "parse_yaml", None) is function]
