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

PER_ARCH = ("train", "evaluate")                              # once per architecture: cnn and ast
PER_DIRECTION = ("pick_teacher", "dump_logits", "train_student", "evaluate_student")  # forward (and reverse)
ONCE = {"prepare", "features", "code", "report"}


def per_run(split: str, directions=("forward",)) -> set[str]:
    """The stages of one split (each for every seed of params `seeds`)."""
    return ({f"{stage}@{arch}-{split}" for stage in PER_ARCH for arch in ("cnn", "ast")}
            | {f"{stage}@{d}-{split}" for stage in PER_DIRECTION for d in directions})


def run(work, *args) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def status(work) -> set[str]:
    """The stages `dvc status` marks, asked in this process (a `dvc` command costs seconds of start-up)."""
    from dvc.repo import Repo

    cwd = os.getcwd()
    os.chdir(work)
    try:
        return set(Repo(str(work)).status())
    finally:
        os.chdir(cwd)


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


def test_dvc_repro_and_experiments(tmp_path):
    params = tiny(read_yaml(REPO / "params.yaml"))
    work = make_project(tmp_path, params)

    assert stages_run(run(work, "dvc", "repro")) == ONCE | per_run("main")
    summary = json.loads((work / "results/report.json").read_text())
    assert summary["runs"] == 1
    for role, model in (("teacher", "cnn"), ("baseline", "ast"), ("student", "forward/student")):
        metrics = json.loads((work / f"results/runs/main/{model}/scores/seed0/metrics.json").read_text())
        assert metrics["clips"] == 8 and summary["forward"]["mean"][role]["accuracy"] == metrics["accuracy"]
    report = (work / "results/report.md").read_text()
    assert "## forward: cnn (efficientnet_test) -> ast (ast_test)" in report and "| main | 0 | 8 |" in report
    assert (work / "results/figures/forward-roles.png").exists()
    shown = run(work, "dvc", "metrics", "show", "--json")
    assert "results/report.json" in shown and "results/runs/main/forward/student/scores/seed0/metrics.json" in shown

    # the small results are git's, the large artifacts DVC's: commit, and nothing is left to run
    run(work, "git", "add", "-A")
    assert "data/features.zarr" not in run(work, "git", "status", "--porcelain")  # ignored, not tracked
    run(work, "git", "commit", "-qm", "repro")
    assert stages_run(run(work, "dvc", "repro")) == set()
    # a stage depends on a params section as a whole: a field added to `augment` (a new augmentation) makes every
    # stage that trains or draws views out of date, the dump among them, without dvc.yaml naming the field
    assert status(work) == set()
    with_field = {**params, "augment": {**params["augment"], "new_mask": 3}}
    (work / "params.yaml").write_text(yaml.safe_dump(with_field))
    changed = status(work)
    assert {"dump_logits@forward-main", "train@cnn-main", "train@ast-main", "train_student@forward-main"} \
        <= set(changed)
    assert {"prepare", "features", "evaluate@cnn-main"}.isdisjoint(changed)
    # so does the world size: N processes train with an N-times larger global batch
    more = {**params, "distributed": {**params["distributed"], "nproc_per_node": 2}}
    (work / "params.yaml").write_text(yaml.safe_dump(more))
    assert {"train@cnn-main", "train_student@forward-main"} <= status(work)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    # every uncached out is git's: a queued experiment starts from a git checkout plus DVC's cache, and an uncached
    # out git ignores would be missing there, re-running its stage and all after it (as data/skipped.csv once did)
    uncached = [next(iter(entry)).replace("${item.run}", "main")
                for stage in yaml.safe_load((work / "dvc.yaml").read_text())["stages"].values()
                for kind in ("outs", "metrics", "plots") for entry in stage.get(kind, [])
                if isinstance(entry, dict) and next(iter(entry.values())).get("cache") is False]
    assert "results/skipped.csv" in uncached
    tracked = run(work, "git", "ls-files")
    for path in uncached:
        if (work / path).exists():
            assert path in tracked, f"{path}: an uncached out that git does not track"

    # a distillation setting is a student-only experiment: it makes exactly the student's training out of date (then
    # its evaluation and the report follow their deps, the new checkpoint and metrics), so a sweep over tau or lambda
    # never re-trains or re-dumps the teacher
    (work / "params.yaml").write_text(yaml.safe_dump({**params, "distill": {**params["distill"], "lambda": 0.3}}))
    assert status(work) == {"train_student@forward-main"}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    # an experiment is committed and compared with main by dvc exp show (a setting no stage of this run reads, so
    # that the suite does not re-train the student: the student-only re-run is what the status above shows)
    ran = stages_run(run(work, "dvc", "exp", "run", "-S", "export.input=features", "-n", "input"))
    assert ran == set()
    table = json.loads(run(work, "dvc", "exp", "show", "--json"))
    rows = {(exp.get("name") or exp.get("rev")): exp for entry in table for exp in [entry, *(e for x in entry.get(
        "experiments") or [] for e in x.get("revs", []))]}
    for name in ("input", "workspace"):
        metrics = rows[name]["data"]["metrics"]["results/report.json"]["data"]
        assert set(metrics["forward"]["mean"]) == {"teacher", "baseline", "student"}, name
    assert rows["input"]["data"]["params"]["params.yaml"]["data"]["export"]["input"] == "features"

    # dvc plots: the three roles' validation curves on one chart, the confusion matrix, per-class values
    plots = json.loads(run(work, "dvc", "plots", "show", "--json"))
    ids = set(plots.get("data", plots))
    assert {"validation", "confusion", "per_class"} <= ids, ids
    assert any("results/runs/main/forward/student/live/seed0/plots/metrics/val/accuracy.tsv" in i for i in ids)
    for role in ("teacher", "baseline", "student"):  # one curve per role, each as long as that role trained
        curves = (work / f"results/plots/forward/validation/{role}.csv").read_text().splitlines()
        assert curves[0] == "epoch,value" and len(curves) == 1 + 2


def test_dvc_graph_of_folds_seeds_directions_and_cross_fit(tmp_path):
    """The stage graph DVC builds from params, without running it."""
    params = tiny(read_yaml(REPO / "params.yaml"))
    work = make_project(tmp_path, params)
    # folds x seeds: one chain per split, each stage for every seed, with nothing written twice (DVC checks the outs
    # of the graph)
    params.update(runs=["fold1", "fold2"], seeds=[0, 1])
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    listed = set(re.findall(r"^(\S+)", run(work, "dvc", "stage", "list"), re.M))
    assert listed == ONCE | per_run("fold1") | per_run("fold2")
    run(work, "dvc", "dag")  # builds the whole graph: refuses overlapping outputs

    # both directions: each architecture is still trained on labels once per run; the reverse direction adds a
    # dump of the AST's predictions and a CNN student
    params.update(runs=["main"], seeds=[0], directions=["forward", "reverse"])
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    listed = set(re.findall(r"^(\S+)", run(work, "dvc", "stage", "list"), re.M))
    assert listed == ONCE | per_run("main", ("forward", "reverse"))
    upstream = run(work, "dvc", "dag", "--md", "train_student@reverse-main")
    assert "dump_logits@reverse-main" in upstream and "train@ast-main" in upstream
    params.update(directions=["forward"])

    # dump.cross_fit: the architecture's stage trains its k part teachers too; the dump waits for it
    params["dump"].update(cross_fit=3)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    listed = set(re.findall(r"^(\S+)", run(work, "dvc", "stage", "list"), re.M))
    assert listed == ONCE | per_run("main")
    upstream = run(work, "dvc", "dag", "--md", "dump_logits@forward-main")
    assert "train@cnn-main" in upstream and "pick_teacher@forward-main" in upstream
