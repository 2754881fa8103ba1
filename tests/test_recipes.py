"""Recipe pieces: balanced sampling weights, weight averaging, checkpoint ensembles, and the presets."""
import numpy as np
import pytest
import torch
import yaml

from pipeline.data.batches import balanced_weights
from pipeline.models.checkpoint import load_checkpoint
from pipeline.models.ensemble import Ensemble
from pipeline.presets import apply, available, leaves, load_preset
from pipeline.settings import load_settings

from .conftest import MAIN, REPO, evaluate, path, settings, stored, train


def test_balanced_weights_follow_psla():
    labels = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 1]], dtype=np.uint8)
    per_class = 1000 / (np.array([4, 1, 1]) + 0.01)
    expected = [per_class[0]] * 3 + [per_class[1], per_class[0] + per_class[2]]
    np.testing.assert_allclose(balanced_weights(labels), expected)


def test_cosine_schedule_warms_up_then_reaches_zero_at_the_last_epoch():
    from pipeline.settings import TrainSettings
    from pipeline.training.loop import lr_factor

    cfg = TrainSettings(warmup_steps=10, schedule="cosine")
    factors = [lr_factor(step, 10, cfg, epochs=5) for step in range(50)]
    assert factors[4] == pytest.approx(0.5) and factors[9] == pytest.approx(1.0)  # linear warm-up
    assert factors[29] == pytest.approx(0.5, abs=0.02) and factors[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))  # then only down
    step = TrainSettings(warmup_steps=0, lr_decay_start=2, lr_decay=0.5)  # the recipes' step decay, as it was
    assert [lr_factor(s, 10, step, 5) for s in (0, 19, 20, 30, 49)] == [1.0, 1.0, 0.5, 0.25, 0.125]


def test_batchnorm_statistics_recomputed_on_clean_training_clips(in_workspace):
    """train.bn_stats: recomputed: the saved CNN's BatchNorm statistics are those of its own weights over clean
    training clips (a cumulative average), not the momentum's trace of the last augmented batches."""
    from pipeline import layout
    from pipeline.data.batches import BatchSource, ZarrRows
    from pipeline.stores.features import FeatureStore
    from pipeline.training.loop import recompute_batchnorm

    _, params = in_workspace
    params["train"]["bn_stats"] = "recomputed"
    train(settings(params), "teacher", MAIN)
    weights, _, meta = stored("teacher")
    model, _ = load_checkpoint(path("teacher"))
    store = FeatureStore(layout.FEATURES)
    again = {k: v.clone() for k, v in model.state_dict().items()}
    recompute_batchnorm(model, BatchSource(ZarrRows(store)), store.indices("train"), 8, store.normalization)
    for key, value in model.state_dict().items():  # measuring again gives what was saved
        if "running_" in key:
            torch.testing.assert_close(value, again[key], rtol=1e-4, atol=1e-5)
    assert meta.train["bn_stats"] == "recomputed" and meta.selection["val/accuracy"] == meta.history[-1]["val/accuracy"]


def test_weight_average_and_checkpoint_ensemble(in_workspace):
    _, params = in_workspace
    params["models"]["cnn"]["epochs"] = 3
    # running BatchNorm statistics: then every float tensor, buffers too, is the members' mean (with recomputed ones
    # the averaged weights get statistics of their own: test_batchnorm_statistics_recomputed_on_clean_training_clips)
    params["train"].update(average_last=2, ensemble_last=2, balanced_sampling=True, bn_stats="running")
    train(settings(params), "teacher", MAIN)
    weights, ensemble, ckpt = stored("teacher")
    assert ckpt.weight_average["epochs"] == 2 and len(ensemble) == 2
    for key, value in weights.items():  # the saved model is the mean of the last two epochs' weights
        if value.is_floating_point():
            expected = (ensemble[0][key].double() + ensemble[1][key].double()) / 2
            torch.testing.assert_close(value, expected.to(value.dtype))
    assert not torch.equal(ensemble[0]["head.weight"], ensemble[1]["head.weight"])

    model, _ = load_checkpoint(path("teacher"))
    assert isinstance(model, Ensemble) and len(model.members) == 2
    x = torch.randn(3, 100, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), (model.members[0](x) + model.members[1](x)) / 2)
    assert 0 <= evaluate(settings(params), "teacher", MAIN)["accuracy"] <= 1


@pytest.mark.parametrize("name", available())
def test_presets_rewrite_params_in_place(tmp_path, name):
    assert name in ("builtin", "own-data", "esc50", "fsd50k", "audioset")
    original = (REPO / "params.yaml").read_text()
    target = tmp_path / "params.yaml"
    target.write_text(original)
    overrides = load_preset(name)
    overrides["data"]["root"] = "/datasets/x"
    result = apply(target, overrides)
    assert yaml.safe_load(target.read_text()) == result
    for key, value in leaves(overrides).items():
        node = result
        for part in key:
            node = node[part]
        assert node == value, key
    comments = lambda text: [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]
    assert comments(target.read_text()) == comments(original)  # every comment kept
    unchanged = {k: v for k, v in leaves(yaml.safe_load(original)).items() if k not in leaves(overrides)
                 and not any(k[: len(o)] == o for o in leaves(overrides))}
    assert all(v == leaves(result)[k] for k, v in unchanged.items())


def test_presets_set_the_same_keys_so_switching_leaves_nothing_behind(tmp_path):
    keys = {name: set(leaves(load_preset(name))) for name in available()}
    assert all(k == keys["esc50"] for k in keys.values()), {n: sorted(k ^ keys["esc50"]) for n, k in keys.items()}
    switched, direct = tmp_path / "switched.yaml", tmp_path / "direct.yaml"
    for target in (switched, direct):
        target.write_text((REPO / "params.yaml").read_text())
    apply(switched, load_preset("esc50"))
    assert apply(switched, load_preset("fsd50k")) == apply(direct, load_preset("fsd50k"))
    assert switched.read_text() == direct.read_text()


def test_preset_refuses_a_key_params_does_not_have(tmp_path):
    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text())
    with pytest.raises(KeyError, match="train.no_such_knob"):
        apply(target, {"train": {"no_such_knob": 1}})
    assert target.read_text() == (REPO / "params.yaml").read_text()


def test_presets_keep_params_yaml_valid_and_leave_other_lines_untouched(tmp_path):
    target = tmp_path / "params.yaml"
    original = (REPO / "params.yaml").read_text()
    target.write_text(original)
    apply(target, {"distill": {"tau": 2.0}, "runs": ["fold1", "fold2"]})
    changed = [(a, b) for a, b in zip(original.splitlines(), target.read_text().splitlines()) if a != b]
    assert len(changed) == 2 and len(original.splitlines()) == len(target.read_text().splitlines())
    assert changed[0] == ("runs: [main]", "runs: [fold1, fold2]")
    (before, after), = changed[1:]
    assert before.startswith("  tau: 4.0 ") and after.startswith("  tau: 2.0 ")
    assert before[9:] == after[9:]  # the comment kept
    assert load_settings(target).distill.tau == 2.0
    for name in available():
        apply(target, load_preset(name))
        apply(target, {"data": {"root": str(tmp_path), "manifest": str(target)}, "features": {"workers": 1}})
        if name != "audioset":  # audioset needs its JSON files named after the preset is applied
            load_settings(target)


def test_preset_command_with_overrides(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text())
    result = CliRunner().invoke(app, ["preset", "esc50", "--root", str(tmp_path), "--params", str(target),
                                      "--set", "models.cnn.name=efficientnet_test", "--set", "models.ast.lr=5e-4",
                                      "--set", "runs=[fold1, fold2]"])
    assert result.exit_code == 0, result.output
    params = yaml.safe_load(target.read_text())
    assert params["runs"] == ["fold1", "fold2"] and params["data"]["root"] == str(tmp_path)
    assert params["models"]["cnn"] == {**params["models"]["cnn"], "name": "efficientnet_test", "epochs": 25}
    assert params["models"]["ast"]["lr"] == 5e-4 and params["models"]["ast"]["name"] == "ast_base"
    assert load_settings(target).models["ast"].lr == 5e-4  # 5e-4 is a number (YAML 1.2, as DVC reads it)
    assert params["features"]["target_frames"] == 512
    bad = CliRunner().invoke(app, ["preset", "esc50", "--params", str(target), "--set", "novalue"])
    assert bad.exit_code != 0


def test_a_preset_with_a_model_of_another_family_keeps_only_that_familys_keys(tmp_path):
    """A preset's EfficientNet `pooling` leaves when --set names an EfficientAT MobileNet, and comes back with the
    preset's value when the preset is applied again: params stay valid either way."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    target, direct = tmp_path / "params.yaml", tmp_path / "direct.yaml"
    for params_file in (target, direct):
        params_file.write_text((REPO / "params.yaml").read_text())
    result = CliRunner().invoke(app, ["preset", "esc50", "--root", str(tmp_path), "--params", str(target),
                                      "--set", "models.cnn.name=efficientat_mn04"])
    assert result.exit_code == 0, result.output
    assert "models.cnn.pooling" in result.output
    params = yaml.safe_load(target.read_text())
    assert params["models"]["cnn"]["name"] == "efficientat_mn04" and "pooling" not in params["models"]["cnn"]
    assert load_settings(target).models["cnn"].name == "efficientat_mn04"
    for params_file in (target, direct):
        args = ["preset", "esc50", "--root", str(tmp_path), "--params", str(params_file)]
        assert CliRunner().invoke(app, args).exit_code == 0
    assert yaml.safe_load(target.read_text()) == yaml.safe_load(direct.read_text())
    assert yaml.safe_load(target.read_text())["models"]["cnn"]["pooling"] == "mean"
