"""dvc.yaml lists, for every stage, exactly the library code it runs and exactly the params it reads, so that
`dvc repro` re-runs a stage whenever something it uses changes, and only then.

Code: the modules are found by following the imports from the stage's script (pipeline/codedeps.py); a subpackage
is listed as its folder when the stage runs every module of it. A model family is loaded by its name at run time:
a stage that builds a model depends on the record stage model_code writes of that model's family
(results/code/<arch>.json, or <direction>-<role>.json) instead of on the families' files.
Params: each stage script declares what it reads (PARAMS; any other read is refused at run time, pipeline/settings.py)
and dvc.yaml lists the same keys.
"""
import ast

import pytest
import yaml

from pipeline.codedeps import ROOT, as_deps, family_record, imports
from pipeline.settings import SECTIONS

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
BUILDS_MODELS = {"pipeline/models/__init__.py", "pipeline/models"}
RECORD = "results/code/"
READS_FAMILIES = {"model_code": "pipeline/models"}  # reads every family's file to find the one a name belongs to


def code_deps(script) -> set[str]:
    return as_deps(imports(ROOT / script) - {ROOT / script})


def declared_params(script: str) -> set[str]:
    """The stage script's PARAMS, with dvc.yaml's interpolations for its placeholders."""
    for node in ast.parse((ROOT / script).read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "PARAMS":
            keys = ast.literal_eval(node.value)
            return {k.replace("{arch}", "${item.arch}").replace("{teacher}", "${teacher}")
                    .replace("{student}", "${student}") for k in keys}
    raise AssertionError(f"{script} declares no PARAMS")


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_lists_exactly_the_code_it_runs(name):
    stage = STAGES[name]
    script = stage["cmd"].split()[1]
    deps = {d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]}
    listed = {d for d in deps if d.startswith("pipeline")}
    assert script in deps, f"{name}: its script {script} is not a dep"
    needed = code_deps(script) | ({READS_FAMILIES[name]} if name in READS_FAMILIES else set())
    needed = {d for d in needed if not any(d.startswith(f + "/") for f in needed if not f.endswith(".py"))}
    assert not needed - listed, f"{name}: runs {sorted(needed - listed)} but dvc.yaml does not list them"
    assert not listed - needed, f"{name}: lists {sorted(listed - needed)}, which it never imports"
    records = {d for d in deps if d.startswith(RECORD)}
    if needed & BUILDS_MODELS and name not in READS_FAMILIES:
        role = "teacher" if name == "dump_logits" else "student"  # the model a per-direction stage builds
        expected = {f"{RECORD}${{item.arch}}.json"} if "arch" in stage["matrix"] else \
            {f"{RECORD}${{item.direction}}-{role}.json"}
        assert records == expected, f"{name} builds models: it must depend on the code record {expected}"
    else:
        assert not records, f"{name} builds no model but depends on {records}"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_lists_exactly_the_params_it_reads(name):
    stage = STAGES[name]
    listed = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    declared = declared_params(stage["cmd"].split()[1])
    assert listed == declared, f"{name}: dvc.yaml lists {sorted(listed)}, the script reads {sorted(declared)}"
    assert all(key.split(".")[0] in SECTIONS for key in declared)


def test_a_stage_that_reads_an_owned_section_imports_its_owner():
    """`augment` and `models.<key>` are validated by the module that owns them; a stage reading one must list it."""
    owners = {"augment": "pipeline/data/augment.py", "models": "pipeline/models/__init__.py"}
    for name, stage in STAGES.items():
        script = stage["cmd"].split()[1]
        deps = {str(f.relative_to(ROOT)) for f in imports(ROOT / script)}
        for key in declared_params(script):
            owner = owners.get(key.split(".")[0])
            assert owner is None or owner in deps, f"{name} reads {key} without importing {owner}"


def test_import_walk_follows_function_level_and_relative_imports():
    deps = code_deps("stages/train_student.py")
    assert {"pipeline/training/loop.py", "pipeline/stores/features.py", "pipeline/models/__init__.py",
            "pipeline/layout.py", "pipeline/settings.py", "pipeline/data"} <= deps
    assert "pipeline/bench.py" not in deps and "pipeline/audit.py" not in deps
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
