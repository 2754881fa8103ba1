"""Which stages a change to each library module re-runs: TABLE below is the documentation of it (docs/artifacts.md
prints it), checked module by module with DVC itself, on the scratch project of tests/dvc_project.py.

Each module in turn gets a comment appended, and `dvc status` must mark exactly the stages TABLE names. A model
family's file (and what it imports) is found by the stages that build its models through the records model_code
writes: for those, the records are rewritten as model_code writes them, and `dvc status` must then mark exactly the
stages after them that TABLE names.
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

# module -> (the stages `dvc status` marks, the stages marked once model_code has rewritten the records it moves)
TABLE = {
    # what every stage reads: the params, the errors, the layout of the artifacts
    "pipeline/__init__.py": (ALL, set()),
    "pipeline/errors.py": (ALL, set()),
    "pipeline/settings.py": (ALL - EVALUATE - EVAL_STUDENT, set()),  # the evaluations read no params
    "pipeline/runs.py": (ALL, set()),
    "pipeline/layout.py": (ALL, set()),
    # audio -> manifest -> features: nothing after the feature store is re-run by a dataset reader
    "pipeline/manifest.py": ({"prepare", "features"}, set()),
    **{f"pipeline/prepare/{m}.py": ({"prepare"}, set())
       for m in ("__init__", "synthetic", "esc50", "fsd50k", "audioset", "folders", "user")},
    **{f"pipeline/features/{m}.py": ({"features"}, set()) for m in ("__init__", "audio", "fbank", "extract")},
    "pipeline/features/check.py": (set(), set()),  # `cmkd check` only
    # the stores: read by every stage after the features
    "pipeline/stores/__init__.py": ({"features"} | BUILDS_MODEL, set()),
    "pipeline/stores/schema.py": ({"features"} | BUILDS_MODEL, set()),
    "pipeline/stores/features.py": ({"features"} | BUILDS_MODEL, set()),
    "pipeline/stores/writer.py": ({"features"} | DUMP, set()),
    "pipeline/stores/predictions.py": (BUILDS_MODEL, set()),
    "pipeline/normalization.py": ({"features"} | BUILDS_MODEL, set()),
    "pipeline/provenance.py": ({"features"} | BUILDS_MODEL | PICK, set()),
    # model code: a family's file re-runs only the stages that build its models (through the code records)
    "pipeline/codedeps.py": (CODE, set()),
    "pipeline/models/__init__.py": (CODE | BUILDS_MODEL, set()),
    "pipeline/models/checkpoint.py": (CODE | BUILDS_MODEL, set()),
    "pipeline/models/ensemble.py": (CODE | BUILDS_MODEL, set()),
    "pipeline/models/pretrained.py": (CODE | TRAIN | STUDENT, set()),
    "pipeline/models/convert.py": (CODE, set()),
    "pipeline/models/families/__init__.py": (CODE, BUILDS_MODEL),
    "pipeline/models/families/ast.py": (CODE, AST_MODELS),
    "pipeline/models/families/efficientnet.py": (CODE, CNN_MODELS),
    "pipeline/models/families/mobilenetv3.py": (CODE, set()),  # neither model of this run is one
    "pipeline/models/timm_cnn.py": (CODE, CNN_MODELS),
    # the task: its loss and headline metric are used by every model's stage; the reported metrics by evaluation,
    # which scores the held-out logits the trainings keep (a metric change re-runs no inference)
    "pipeline/task/__init__.py": (EVERY_MODEL | {"report"}, set()),
    "pipeline/task/headline.py": (EVERY_MODEL | {"report"}, set()),
    "pipeline/task/metrics.py": (EVALUATE | EVAL_STUDENT | {"report"}, set()),
    # the data plane: batches and the augmentation feed every model
    "pipeline/data/__init__.py": (BUILDS_MODEL, set()),
    "pipeline/data/augment.py": (BUILDS_MODEL, set()),
    "pipeline/data/batches.py": (BUILDS_MODEL, set()),
    "pipeline/data/resident.py": (TRAIN | STUDENT, set()),
    "pipeline/runtime.py": (BUILDS_MODEL, set()),
    # training: the loss, the loop and what a model learns from
    "pipeline/training/__init__.py": (TRAIN | DUMP | STUDENT, set()),
    "pipeline/training/cross_fit.py": (TRAIN | DUMP | STUDENT, set()),
    "pipeline/training/adopt.py": (TRAIN, set()),
    **{f"pipeline/training/{m}.py": (TRAIN | STUDENT, set())
       for m in ("loop", "jobs", "teaching", "selection", "resume")},
    # the dump, the evaluation and the report
    "pipeline/cache/__init__.py": (DUMP | PICK, set()),
    "pipeline/cache/teacher.py": (DUMP | PICK, set()),
    "pipeline/cache/dump.py": (DUMP, set()),
    "pipeline/cache/imported.py": (DUMP, set()),
    "pipeline/evaluation/__init__.py": (EVERY_MODEL | {"report"}, set()),
    "pipeline/evaluation/inference.py": (BUILDS_MODEL, set()),
    "pipeline/evaluation/held_out.py": (TRAIN | STUDENT | EVALUATE | EVAL_STUDENT | {"report"}, set()),
    "pipeline/evaluation/evaluate.py": (EVALUATE | EVAL_STUDENT, set()),
    "pipeline/evaluation/report.py": ({"report"}, set()),
    "pipeline/evaluation/statistics.py": ({"report"}, set()),
    "pipeline/evaluation/figures.py": ({"report"}, set()),
    # commands outside the pipeline (and the export stage, off by default)
    **{f"pipeline/{m}.py": (set(), set()) for m in (
        "evaluation/compare", "export/__init__", "export/graphs", "export/folders", "export/card", "predict",
        "audit", "cli", "validation", "presets/__init__", "scale", "events/__init__", "events/timeline",
        "events/segments", "events/outputs", "events/scoring", "events/soundscapes", "events/detect",
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


@pytest.mark.parametrize("module", sorted(TABLE))
def test_a_comment_in_a_module_reruns_exactly_the_stages_that_use_it(project, module):
    work, repo = project
    direct, after_records = TABLE[module]
    path = work / module
    original = path.read_text()
    records = {p: p.read_text() for p in (work / "results/code").glob("*.json")}
    try:
        path.write_text(original + "\n# a comment\n")
        assert marked(repo) == direct, f"{module}: dvc status marks other stages than TABLE says"
        if direct & CODE:
            rewrite_records(work)
            assert marked(repo) - CODE - direct == after_records, f"{module}: after model_code"
    finally:
        path.write_text(original)
        for p, text in records.items():
            p.write_text(text)
    assert marked(repo) == set()
