"""dvc.yaml says, for every stage, what code it runs and exactly the params it reads, so that `dvc repro` re-runs a
stage whenever something it uses changes, and only then.

Code: prepare and features list their library files (the modules found by following the imports from the stage's
script, pipeline/codedeps.py; a subpackage as its folder when the stage runs every module of it). Every later stage
depends on its code records instead, which stage `code` writes: results/code/stages/<stage>.json (the files its
script runs) and, for a stage that builds a model, results/code/models/<model>.json (the files that model's family
runs, and the content digest of the store it reads).
Params: each stage script declares what it reads (PARAMS; any other read is refused at run time, pipeline/settings.py)
and dvc.yaml lists the same keys.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.codedeps import ROOT, as_deps, family_record, imports, stage_record
from pipeline.settings import SECTIONS

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
EXPLICIT = ("prepare", "features", "frontend")  # before the stores: they list their files (stage code reads
# the stores' digests); stage frontend also its front-end's own file, pipeline/features/${item.name}.py
STAGE_RECORD, MODEL_RECORD = "results/code/stages/", "results/code/models/"


def code_deps(script) -> set[str]:
    return as_deps(imports(ROOT / script) - {ROOT / script})


def script_of(stage: dict) -> str:
    return stage["cmd"].split()[1]


def deps_of(stage: dict) -> set[str]:
    return {d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]}


def declared_params(script: str) -> set[str]:
    """The stage script's PARAMS, with dvc.yaml's interpolations for its placeholders."""
    for node in ast.parse((ROOT / script).read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "PARAMS":
            keys = ast.literal_eval(node.value)
            return {k.replace("{arch}", "${item.arch}").replace("{teacher}", "${teacher}")
                    .replace("{student}", "${student}") for k in keys}
    raise AssertionError(f"{script} declares no PARAMS")


@pytest.mark.parametrize("name", EXPLICIT)
def test_an_explicit_stage_lists_exactly_the_code_it_runs(name):
    stage = STAGES[name]
    script, deps = script_of(stage), deps_of(stage)
    listed = {d for d in deps if d.startswith("pipeline") and "${item.name}" not in d}
    assert script in deps, f"{name}: its script {script} is not a dep"
    needed = code_deps(script)
    needed = {d for d in needed if not any(d.startswith(f + "/") for f in needed if not f.endswith(".py"))}
    assert not needed - listed, f"{name}: runs {sorted(needed - listed)} but dvc.yaml does not list them"
    assert not listed - needed, f"{name}: lists {sorted(listed - needed)}, which it never imports"
    assert not any(imports_of(f).startswith("pipeline.models") for f in imports(ROOT / script)), \
        f"{name} runs model code: it must depend on code records, after the store"


def imports_of(path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


RECORDED = [name for name in STAGES if name not in (*EXPLICIT, "code")]


@pytest.mark.parametrize("name", RECORDED)
def test_a_later_stage_depends_on_its_code_records(name):
    stage = STAGES[name]
    script, deps = script_of(stage), deps_of(stage)
    assert not {d for d in deps if d.startswith(("pipeline", "stages"))}, f"{name} lists code files: use its record"
    assert f"{STAGE_RECORD}{script.removeprefix('stages/').removesuffix('.py')}.json" in deps
    models = {d for d in deps if d.startswith(MODEL_RECORD)}
    if ROOT / "pipeline/models/__init__.py" in imports(ROOT / script):  # it builds a model: its family's record
        role = "teacher" if name == "dump_logits" else "student"  # the model a per-direction stage builds
        expected = {f"{MODEL_RECORD}${{item.arch}}.json"} if "arch" in stage["matrix"] else \
            {f"{MODEL_RECORD}${{item.direction}}-{role}.json"}
        assert models == expected, f"{name} builds models: it must depend on the code record {expected}"
    else:
        assert not models, f"{name} builds no model but depends on {models}"


def test_stage_code_writes_every_record_the_stages_depend_on(tmp_path):
    code = STAGES["code"]
    assert deps_of(code) == {"stages", "pipeline", "results/stores"}
    assert "pipeline/features/${item.name}.py" in deps_of(STAGES["frontend"])
    outs = {o if isinstance(o, str) else next(iter(o)) for o in code["outs"]}
    wanted = {d for name in RECORDED for d in deps_of(STAGES[name]) if d.startswith("results/code/")}
    wanted = {d.replace("${item.arch}", "${teacher}") for d in wanted} | \
        {d.replace("${item.arch}", "${student}") for d in wanted}
    wanted = {d.replace("${item.direction}", direction) for d in wanted for direction in ("forward", "reverse")}
    assert wanted == outs
    # the stage itself, on a copy of this repository: each record is codedeps' of its script or model
    import shutil

    for folder in ("stages", "pipeline"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "results/stores").mkdir(parents=True)
    (tmp_path / "results/stores/fbank.json").write_text(json.dumps({"content_sha256": "x"}))  # the default store's
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    subprocess.run([sys.executable, str(ROOT / "stages/code.py")], cwd=tmp_path, check=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for out in outs:
        record = json.loads((tmp_path / out.replace("${teacher}", params["teacher"])
                             .replace("${student}", params["student"])).read_text())
        if "/stages/" in out:
            assert record == stage_record(record["script"]) and out.endswith(Path(record["script"]).stem + ".json")
        else:
            assert record["store"] == {"content_sha256": "x"}
            assert {k: v for k, v in record.items() if k != "store"} == family_record(record["model"],
                                                                                        record["name"])


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_lists_exactly_the_params_it_reads(name):
    stage = STAGES[name]
    listed = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    declared = declared_params(stage["cmd"].split()[1])
    assert listed == declared, f"{name}: dvc.yaml lists {sorted(listed)}, the script reads {sorted(declared)}"
    assert all(key.split(".")[0] in SECTIONS for key in declared)


def test_a_stage_that_reads_an_owned_section_imports_its_owner():
    """`augment`, `distill` and `models.<key>` are validated by the module that owns them; a stage reading one must
    run it (stage code reads no more of models than their names)."""
    owners = {"augment": "pipeline/data/augment.py", "distill": "pipeline/training/teaching.py",
              "models": "pipeline/models/__init__.py"}
    for name, stage in STAGES.items():
        script = stage["cmd"].split()[1]
        if name == "code":
            continue
        deps = {str(f.relative_to(ROOT)) for f in imports(ROOT / script)}
        for key in declared_params(script):
            owner = owners.get(key.split(".")[0])
            assert owner is None or owner in deps, f"{name} reads {key} without importing {owner}"


def test_import_walk_follows_function_level_and_relative_imports():
    deps = code_deps("stages/train_student.py")
    assert {"pipeline/training/loop.py", "pipeline/stores/features.py", "pipeline/models/__init__.py",
            "pipeline/layout.py", "pipeline/settings.py", "pipeline/data"} <= deps
    assert "pipeline/bench" not in deps and "pipeline/audit.py" not in deps
    assert "pipeline/training/adopt.py" not in deps  # only the stage train@<arch> adopts ready teachers
    assert not any(d.startswith("pipeline/models/families") for d in deps)  # loaded by name
    features = code_deps("stages/features.py")
    assert not any(d.startswith(("pipeline/models", "pipeline/task", "pipeline/training", "pipeline/data"))
                   for d in features), "the features stage imports model, metric, training or augmentation code"


def test_a_family_record_holds_its_own_file_and_no_other_family():
    record = family_record("cnn", "efficientnet_test")
    assert record["family"] == "pipeline/models/families/efficientnet.py"
    assert "pipeline/models/timm_cnn.py" in record["files"]
    assert not any(f.endswith("families/ast.py") for f in record["files"])
    assert family_record("x", "tf_efficientnet_b2")["family"] == record["family"]
    assert family_record("ast", "ast_base")["family"] == "pipeline/models/families/ast.py"
