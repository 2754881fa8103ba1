"""Which stages a change to each library module re-runs: TABLE below is the documentation of it (docs/artifacts.md
prints it), checked module by module with DVC itself, on the scratch project of tests/dvc_project.py.

Each module in turn gets a comment appended. `dvc status` must first mark stage code (it reads every module) and
those of prepare and features that list the module; then, the code records rewritten as stage code writes them,
exactly the stages TABLE names (a record that did not change marks nothing).
"""
import pytest

from pipeline.codedeps import ROOT

from .dvc_project import (
    ALL,
    BUILDS_MODEL,
    CODE,
    DUMP,
    EVAL_STUDENT,
    EVALUATE,
    EVERY_MODEL,
    PICK,
    RUN,
    STUDENT,
    TRAIN,
    make_project,
    marked,
    rewrite_records,
)

pytestmark = pytest.mark.xdist_group("reruns")  # one project, made once, on one worker

# the stages the AST's family builds models in (cnn -> ast forward: the student; ast -> cnn reverse: the teacher)
AST_MODELS = {f"train@ast-{RUN}", f"train_student@forward-{RUN}", f"dump_logits@reverse-{RUN}"}
CNN_MODELS = {f"train@cnn-{RUN}", f"train_student@reverse-{RUN}", f"dump_logits@forward-{RUN}"}

# module -> the stages a comment in it re-runs (besides stage code, which reads every module)
TABLE = {
    # what every stage reads: the params, the errors, the layout of the artifacts
    "pipeline/__init__.py": ALL,
    "pipeline/errors.py": ALL,
    "pipeline/settings.py": ALL,
    "pipeline/runs.py": ALL,
    "pipeline/layout.py": ALL,
    # audio -> manifest -> features: nothing after the feature store is re-run by a dataset reader
    "pipeline/manifest.py": {"prepare", "features"},
    **{f"pipeline/prepare/{m}.py": {"prepare"}
       for m in ("__init__", "synthetic", "esc50", "fsd50k", "audioset", "folders", "user")},
    **{f"pipeline/features/{m}.py": {"features"}
       for m in ("__init__", "audio", "fbank", "extract", "length", "frontend")},
    # another front-end's file re-runs only its own store's stage frontend@<name> (none in this run)
    "pipeline/features/efficientat.py": set(),
    "pipeline/features/beats.py": set(),
    "pipeline/features/check.py": set(),  # `cmkd check` only
    # the stores: read by every stage after the features
    "pipeline/stores/__init__.py": {"features"} | BUILDS_MODEL,
    "pipeline/stores/schema.py": {"features"} | BUILDS_MODEL,
    "pipeline/stores/features.py": {"features"} | BUILDS_MODEL,
    "pipeline/stores/writer.py": {"features"} | DUMP,
    "pipeline/stores/predictions.py": BUILDS_MODEL,
    "pipeline/normalization.py": {"features"} | BUILDS_MODEL,
    "pipeline/provenance.py": {"features"} | BUILDS_MODEL | PICK,
    # model code: a family's file re-runs only the stages that build its models (through the code records)
    "pipeline/codedeps.py": CODE,
    "pipeline/models/__init__.py": CODE | BUILDS_MODEL,
    "pipeline/models/checkpoint.py": CODE | BUILDS_MODEL,
    "pipeline/models/ensemble.py": CODE | BUILDS_MODEL,
    "pipeline/models/pretrained.py": CODE | TRAIN | STUDENT,
    "pipeline/models/convert.py": CODE,
    "pipeline/models/families/__init__.py": CODE | BUILDS_MODEL,
    "pipeline/models/families/ast.py": CODE | AST_MODELS,
    "pipeline/models/families/efficientnet.py": CODE | CNN_MODELS,
    **{f"pipeline/models/families/{m}.py": CODE  # neither model of this run is one
       for m in ("mobilenetv3", "efficientat", "beats")},
    "pipeline/models/timm_cnn.py": CODE | CNN_MODELS,
    # the task: its loss and headline metric are used by every model's stage; the reported metrics by evaluation,
    # which scores the held-out logits the trainings keep (a metric change re-runs no inference)
    "pipeline/task/__init__.py": EVERY_MODEL | {"report"},
    "pipeline/task/headline.py": EVERY_MODEL | {"report"},
    "pipeline/task/metrics.py": EVALUATE | EVAL_STUDENT | {"report"},
    # the data plane: batches and the augmentation feed every model
    "pipeline/data/__init__.py": BUILDS_MODEL,
    "pipeline/data/augment.py": BUILDS_MODEL,
    "pipeline/data/batches.py": BUILDS_MODEL,
    "pipeline/data/resident.py": TRAIN | STUDENT | DUMP,  # the dump reads the store resident too
    "pipeline/runtime.py": BUILDS_MODEL,
    # training: the loss, the loop and what a model learns from
    "pipeline/training/__init__.py": TRAIN | DUMP | STUDENT,
    "pipeline/training/cross_fit.py": TRAIN | DUMP | STUDENT,
    "pipeline/training/adopt.py": TRAIN,
    **{f"pipeline/training/{m}.py": TRAIN | STUDENT
       for m in ("loop", "jobs", "teaching", "selection", "resume")},
    # the dump, the evaluation and the report
    "pipeline/cache/__init__.py": DUMP | PICK,
    "pipeline/cache/teacher.py": DUMP | PICK,
    "pipeline/cache/dump.py": DUMP,
    "pipeline/cache/imported.py": DUMP,
    "pipeline/evaluation/__init__.py": EVERY_MODEL | {"report"},
    "pipeline/evaluation/inference.py": BUILDS_MODEL,
    "pipeline/evaluation/held_out.py": TRAIN | STUDENT | EVALUATE | EVAL_STUDENT | {"report"},
    "pipeline/evaluation/evaluate.py": EVALUATE | EVAL_STUDENT,
    "pipeline/evaluation/report.py": {"report"},
    "pipeline/evaluation/statistics.py": {"report"},
    "pipeline/evaluation/figures.py": {"report"},
    # commands outside the pipeline (and the export stage, off by default)
    **{f"pipeline/{m}.py": set() for m in (
        "evaluation/compare", "export/__init__", "export/graphs", "export/folders", "export/card", "predict",
        "audit", "cli", "validation", "presets/__init__", "scale", "events/__init__", "events/timeline",
        "events/activity", "events/segments", "events/outputs", "events/scoring", "events/soundscapes", "events/detect",
        *(f"bench/{section}" for section in ("__init__", "common", "features", "read", "dump", "train", "processes",
                                             "export", "detect", "bootstrap")))},
}


def test_the_table_names_every_library_module():
    modules = {str(p.relative_to(ROOT)) for p in ROOT.glob("pipeline/**/*.py")}
    assert modules == set(TABLE), f"not in TABLE: {sorted(modules - set(TABLE))}; gone: {sorted(set(TABLE) - modules)}"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    work = tmp_path_factory.mktemp("reruns")
    return work, make_project(work)


EXPLICIT = {"prepare", "features"}  # the stages that list their files; the others depend on code records


@pytest.mark.parametrize("module", sorted(TABLE))
def test_a_comment_in_a_module_reruns_exactly_the_stages_that_use_it(project, module):
    work, repo = project
    path = work / module
    original = path.read_text()
    records = {p: p.read_text() for p in (work / "results/code").rglob("*.json")}
    try:
        path.write_text(original + "\n# a comment\n")
        if TABLE[module] & EXPLICIT or module.endswith("__init__.py"):  # stage code is marked by any module alike
            assert marked(repo) == CODE | (TABLE[module] & EXPLICIT), f"{module}: dvc status marks other stages"
        rewrite_records(work)  # what stage code then writes
        assert marked(repo) == CODE | TABLE[module], f"{module}: after stage code, other stages than TABLE says"
    finally:  # every file as it was, byte for byte: the project is up to date again (the last test checks it)
        path.write_text(original)
        for p, text in records.items():
            p.write_text(text)


FRONTEND = {"frontend@efficientat"}
# a run whose CNN is an EfficientAT MobileNet: a second store (data/frontends/efficientat.zarr) beside the fbank's
FRONTEND_TABLE = {
    "pipeline/features/efficientat.py": FRONTEND,  # its own store alone: the MobileNet's training reads the store
    "pipeline/features/beats.py": set(),
    "pipeline/features/fbank.py": {"features"} | FRONTEND,  # the mel banks come from it
    "pipeline/features/frontend.py": {"features"} | FRONTEND,
    "pipeline/models/families/efficientat.py": CODE | CNN_MODELS,
    "pipeline/models/families/efficientnet.py": CODE,
    "pipeline/models/convert.py": CODE,
}


@pytest.fixture(scope="module")
def two_store_project(tmp_path_factory):
    work = tmp_path_factory.mktemp("reruns-frontends")
    cnn = {"name": "efficientat_test", "lr": 1e-3, "epochs": 2}
    return work, make_project(work, models={"cnn": cnn}, frontends=["efficientat"])


@pytest.mark.parametrize("module", sorted(FRONTEND_TABLE))
def test_a_front_end_change_reruns_its_store_alone(two_store_project, module):
    work, repo = two_store_project
    path = work / module
    original = path.read_text()
    try:
        path.write_text(original + "\n# a comment\n")
        rewrite_records(work)
        assert marked(repo) == CODE | FRONTEND_TABLE[module], module
    finally:
        path.write_text(original)
        rewrite_records(work)


def test_a_store_whose_values_change_reruns_its_consumers_alone(two_store_project):
    """A re-extracted store whose content digest moved (new values) re-runs the stages of the models that read it
    (the MobileNet's: it is the CNN), not the AST's, which reads the fbank's store."""
    work, repo = two_store_project
    record = work / "results/stores/efficientat.json"
    original = record.read_text()
    try:
        record.write_text('{"content_sha256": "another"}\n')
        rewrite_records(work)
        assert marked(repo) == CODE | FRONTEND | CNN_MODELS
    finally:
        record.write_text(original)
        rewrite_records(work)
    assert marked(repo) == set()


def test_the_projects_are_up_to_date_after_every_change_was_undone(project, two_store_project):
    assert marked(project[1]) == set() and marked(two_store_project[1]) == set()
