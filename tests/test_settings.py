"""params.yaml is read once into typed settings; every kind of bad value is refused with a message that names the key,
the value and what is allowed, all problems at once."""
import copy

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import ParamsError
from pipeline.settings import load_settings
from pipeline.validation import settings_from

from .conftest import REPO


def refused(params: dict) -> str:
    with pytest.raises(ParamsError) as error:
        settings_from(params, "params.yaml")
    return str(error.value)


def test_the_repository_params_are_valid_and_typed():
    settings = load_settings(REPO / "params.yaml")
    assert settings.train.betas == (0.95, 0.999) and isinstance(settings.train.batch_size, int)
    assert settings.distill.lam == 0.5 and settings.model("student").name == "ast_test"
    assert settings.model("baseline") == settings.model("student")


@pytest.mark.parametrize("change,message", [
    (lambda p: p.update(distil=p.pop("distill")), "distil: unknown key (did you mean distill?)"),
    (lambda p: p["train"].update(batch_sise=8), "train.batch_sise: unknown key (did you mean train.batch_size?)"),
    (lambda p: p["models"]["cnn"].update(poling="mean"),
     "models.cnn.poling: unknown key (did you mean models.cnn.pooling?)"),
    (lambda p: p["train"].update(epochs=3),
     "train.epochs: no longer a key (each model sets its own: models.<key>.epochs)"),
    (lambda p: p["train"].update(epoch=3), "train.epoch: unknown key (allowed here: average_last, balanced_sampling"),
    (lambda p: p["train"].update(batch_size="sixteen"),
     "train.batch_size = 'sixteen': Input should be a valid integer"),
    (lambda p: p["train"].update(batch_size=16.5), "train.batch_size = 16.5: Input should be a valid integer"),
    (lambda p: p["data"].update(multi_label="yes"), "data.multi_label = 'yes': Input should be a valid boolean"),
    (lambda p: p["features"].update(scheduler="thread"),
     "features.scheduler = 'thread': Input should be 'threads', 'processes', 'synchronous' or 'distributed'"),
    (lambda p: p["distill"].update({"lambda": 1.5}), "distill.lambda = 1.5: Input should be less than or equal to 1"),
    (lambda p: p["distill"].update(tau=0), "distill.tau = 0: Input should be greater than 0"),
    (lambda p: p["dump"].update(views=-1), "dump.views = -1: Input should be greater than or equal to 0"),
    (lambda p: p["models"]["ast"].update(fstride=30),
     "models.ast.fstride = 30: Input should be less than or equal to 16"),
    (lambda p: p["models"]["cnn"].update(pooling="max"),
     "models.cnn.pooling = 'max': Input should be 'mean', 'attention' or 'psla'"),
    (lambda p: p["models"]["cnn"].update(name="resnet50"),
     "models.cnn.name = 'resnet50': unknown model 'resnet50'; registered:"),
    (lambda p: p.update(runs=["fold1", "fld2"]),
     "runs.1 = 'fld2': Value error, run 'fld2': expected 'main' or 'fold<K>'"),
    (lambda p: p.update(teacher="cnnn"), "teacher: 'cnnn' is not a key of models (have ast, cnn)"),
    (lambda p: p["data"].update(source="esc"),
     "data.source = 'esc': not a data source (did you mean esc50? have audioset"),
    (lambda p: p["data"].update(source="manifest"), "source is 'manifest' but data.manifest names no file"),
    (lambda p: p["data"]["split"].update(val=0.5, test=0.5), "val + test = 1 leaves no training clips"),
    (lambda p: p["train"].update(resident="sometimes"),
     "train.resident = 'sometimes': Input should be 'auto', True or False"),
    (lambda p: p["distributed"].update(backend="mpi"),
     "distributed.backend = 'mpi': Input should be 'auto', 'nccl' or 'gloo'"),
    (lambda p: p["distributed"].update(nnodes=2, rdzv_endpoint="head"),
     "distributed: rdzv_endpoint 'head' must be host:port when nnodes > 1"),
    (lambda p: p["train"].update(select="first"), "train.select = 'first': Input should be 'last' or 'best'"),
])
def test_each_kind_of_bad_param_is_refused_by_name(repo_params, change, message):
    change(repo_params)
    assert message.replace("Value error, ", "") in refused(repo_params)


def test_every_problem_is_reported_at_once(repo_params):
    bad = copy.deepcopy(repo_params)
    bad["train"]["batch_size"] = 0
    bad["features"]["on_error"] = "ignore"
    bad["models"]["cnn"]["lr"] = -1.0
    text = refused(bad)
    assert text.startswith("params.yaml: 3 problems")
    for key in ("train.batch_size = 0", "features.on_error = 'ignore'", "models.cnn.lr = -1.0"):
        assert key in text


def test_the_stage_command_stops_with_the_message(tmp_path, repo_params):
    repo_params["distill"]["tua"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    result = CliRunner().invoke(app, ["check-params", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code != 0 and "distill.tua: unknown key (did you mean distill.tau?)" in str(result.exception)
    repo_params["distill"].pop("tua")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    assert CliRunner().invoke(app, ["check-params", "--params", str(tmp_path / "params.yaml")]).exit_code == 0


def test_numbers_read_as_yaml_1_2(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("lr: 1.0e-3\n", "lr: 5e-4\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    assert load_settings(tmp_path / "params.yaml").models["cnn"].lr == 5e-4  # PyYAML would read a string


def test_params_yaml_lists_every_knob():
    """Every key the settings read is in params.yaml, with its default: `dvc exp run -S key=value` can only set a
    key the file has, and a stage's params deps only see what the file holds."""
    from pipeline.data.augment import AugmentSettings
    from pipeline.settings import PLAN_KEYS, SECTIONS

    def keys(model, prefix=()):
        out = set()
        for name, field in model.model_fields.items():
            key = prefix + (field.alias or name,)
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, __import__("pydantic").BaseModel):
                out |= keys(kind, key)
            else:
                out.add(key)
        return out

    def present(tree, prefix=()):
        out = set()
        for key, value in tree.items():
            out.add(prefix + (key,))
            if isinstance(value, dict):
                out |= present(value, prefix + (key,))
        return out

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    classes = {**SECTIONS, "augment": AugmentSettings}
    wanted = {(name,) for name in PLAN_KEYS} | {
        k for name, cls in classes.items() if name not in PLAN_KEYS and cls is not None for k in keys(cls, (name,))}
    missing = sorted(".".join(k) for k in wanted - present(params))
    assert not missing, f"params.yaml lacks {missing}"
