"""The stages run as library calls on the tiny workspace: both directions, alignment checks, the report."""
import json
import shutil

import numpy as np
import pytest
import torch
import zarr

from pipeline import layout
from pipeline.evaluation.report import write_report
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore
from pipeline.stores.schema import StoreMismatchError
from pipeline.task import SingleLabel
from pipeline.training.loop import train_step

from .conftest import MAIN, cache_path, checkpoint, dump, evaluate, name, path, settings, train


@pytest.mark.parametrize("teacher,student", [("cnn", "ast"), ("ast", "cnn")])
def test_both_directions(in_workspace, teacher, student):
    _, params = in_workspace
    params.update(teacher=teacher, student=student)
    s = settings(params)
    train(s, "teacher", MAIN)
    dump(s, MAIN)
    train(s, "student", MAIN)
    train(s, "baseline", MAIN)
    for role in ("teacher", "student", "baseline"):
        evaluate(s, role, MAIN)

    ckpt = {role: checkpoint(role, s=s) for role in ("teacher", "student", "baseline")}
    assert ckpt["teacher"].architecture == teacher
    assert ckpt["student"].architecture == student == ckpt["baseline"].architecture
    assert ckpt["student"].teacher["architecture"] == teacher  # provenance of the targets it learned from
    assert ckpt["baseline"].teacher is None
    history = ckpt["student"].history
    assert len(history) == 2 and all(h["train/kd_loss"] > 0 for h in history)
    assert all(h["train/kd_loss"] == 0 for h in ckpt["baseline"].history)
    report = write_report(s)
    assert f"forward: {teacher} (" in report and f") -> {student} (" in report
    assert json.loads(layout.metrics(name("student", s), MAIN).read_text())["architecture"] == student
    # the training curves, as DVCLive logged them
    curve = (layout.live_dir(name("student", s), MAIN) / "plots" / "metrics" / "val" / "accuracy.tsv").read_text()
    curve = curve.split()
    assert curve[:2] == ["step", "accuracy"] and len(curve) == 2 + 2 * 2


def test_predictions_are_aligned_with_features(with_teacher):
    features, predictions = FeatureStore(layout.FEATURES), PredictionStore(cache_path())
    np.testing.assert_array_equal(predictions.clip_ids, features.clip_ids)
    assert predictions.logits.shape == (len(features.clip_ids), len(features.classes))
    assert predictions.features_fingerprint == features.fingerprint
    predictions.check_matches(features)


def _tampered_copy(tmp_path, change):
    """A copy of the prediction store with one thing changed."""
    source = zarr.open_group(cache_path(), mode="r")
    copy = zarr.open_group(tmp_path / "predictions.zarr", mode="w")
    copy.attrs.update(dict(source.attrs))
    clip_ids, logits = source["clip_ids"][:], source["logits"][:]
    clip_ids, logits = change(copy, clip_ids, logits)
    copy.create_array("clip_ids", data=clip_ids)
    copy.create_array("logits", data=logits)
    return PredictionStore(tmp_path / "predictions.zarr")


def _reorder(group, ids, logits):
    return ids[::-1].copy(), logits[::-1].copy()


def _drop_last(group, ids, logits):
    return ids[:-1], logits[:-1]


def _other_classes(group, ids, logits):
    group.attrs["classes"] = list(reversed(group.attrs["classes"]))
    return ids, logits


def _other_clips(group, ids, logits):  # (a cache of another front-end's store of the same clips is fine)
    group.attrs["clips_fingerprint"] = "0" * 64
    return ids, logits


def _other_run(group, ids, logits):
    group.attrs["run"] = "fold3"
    return ids, logits


def _foreign_clip(group, ids, logits):
    ids = ids.copy()
    ids[5] = "not-a-clip"
    return ids, logits


@pytest.mark.parametrize("change,message", [
    (_reorder, "clip ids differ in order, first at row 1"),
    (_drop_last, "1 of 64 training clips are not cached .* set distill.missing: gt_only"),
    (_foreign_clip, "1 cached clips are not in the feature store \\(first: 'not-a-clip'\\)"),
    (_other_classes, "class lists differ"),
    (_other_clips, "made from the clips of another dataset or manifest .clips fingerprint 000000000000"),
    (_other_run, "its teacher was trained in run 'fold3', this is run 'main'"),
])
def test_student_refuses_mismatched_cache(with_teacher, tmp_path, change, message):
    _, params = with_teacher
    tampered = _tampered_copy(tmp_path, change)
    with pytest.raises(StoreMismatchError, match=message):
        tampered.check_matches(FeatureStore(layout.FEATURES))
    # and the student stage itself refuses the store it finds at its run's teacher_predictions.zarr
    shutil.rmtree(cache_path())
    shutil.copytree(tmp_path / "predictions.zarr", cache_path())
    with pytest.raises(StoreMismatchError, match=message.replace("1 of 64", "1 of \\d+")):
        train(settings(params), "student", MAIN)


def test_clips_missing_from_the_cache_train_on_ground_truth_alone(with_teacher, tmp_path):
    """distill.missing: gt_only. A clip without a cached prediction takes its label as the KD target, which
    gives exactly the ground-truth loss's gradient."""
    from pipeline.training.teaching import CachedTeacher

    _, params = with_teacher
    features = FeatureStore(layout.FEATURES)
    train_rows = features.indices("train")
    dropped = train_rows[::3]
    keep = lambda group, ids, logits: (np.delete(ids, dropped), np.delete(logits, dropped, axis=0))
    partial = _tampered_copy(tmp_path, keep)
    rows = partial.check_matches(features, train_rows, missing="gt_only")
    assert (rows[dropped] == -1).all() and (rows >= 0).sum() == 64 - len(dropped)
    shutil.rmtree(cache_path())
    shutil.copytree(tmp_path / "predictions.zarr", cache_path())
    with pytest.raises(StoreMismatchError, match="training clips are not cached"):
        train(settings(params), "student", MAIN)
    params["distill"]["missing"] = "gt_only"
    assert train(settings(params), "student", MAIN)["train/kd_loss"] > 0

    # one step: a clip without a teacher gets the gradient of lambda * L_gt + (1 - lambda) * L_gt = L_gt
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(2, 4), torch.eye(3)[[0, 2]]
    teaching = CachedTeacher(partial, rows, tau=1.0, task=SingleLabel())
    batch = {"y": y, "teacher_logits": torch.randn(2, 3), "has_teacher": torch.tensor([False, False])}
    grads = []
    for teacher_probs in (teaching.teacher_probs(batch, x, y), None):
        m = torch.nn.Linear(4, 3)
        m.load_state_dict(model.state_dict())
        opt = torch.optim.SGD(m.parameters(), lr=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        train_step(m, opt, sched, x, y, teacher_probs, 0.5, SingleLabel())
        grads.append(m.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_multi_label_pipeline_reports_map(tmp_path, monkeypatch, repo_params):
    from pipeline.features.extract import extract
    from pipeline.prepare import prepare

    from .conftest import tiny

    params = tiny(repo_params)
    params["data"].update(multi_label=True, max_events=2)
    s = settings(params)
    monkeypatch.chdir(tmp_path)
    prepare(s)
    extract(s)
    store = FeatureStore(layout.FEATURES)
    assert store.multi_label and store.labels.sum(1).max() == 2
    train(s, "teacher", MAIN)
    dump(s, MAIN)
    train(s, "student", MAIN)
    metrics = evaluate(s, "student", MAIN)
    assert set(metrics) >= {"mAP", "mean_auc", "d_prime", "classes_scored"} and 0 <= metrics["mAP"] <= 1
    per_class = json.loads(layout.per_class(name("student"), MAIN).read_text())
    assert set(per_class["AP"]) == set(store.classes) and per_class["unscored"] == []
    from pipeline.audit import inspect_path

    audit = inspect_path(cache_path())  # multi-label: the classes ranked worst, not the confused pairs
    assert {"class", "AP", "positives"} <= set(audit["where it errs most"][0])


@pytest.mark.parametrize("arch,timm_name", [("cnn", "test_efficientnet"), ("ast", None)])
def test_teacher_starts_from_a_pretrained_file(in_workspace, tmp_path, arch, timm_name):
    import timm

    from pipeline.models import create_model
    from pipeline.models.checkpoint import Checkpoint, save_checkpoint

    _, params = in_workspace
    params["teacher"], params["student"] = arch, "ast" if arch == "cnn" else "cnn"
    if timm_name:  # an ImageNet-style timm file with RGB input
        torch.save(timm.create_model(timm_name, pretrained=False).state_dict(), tmp_path / "weights.pth")
    else:  # a checkpoint of this project trained at another length and class count
        source = create_model("ast_test", num_classes=9, num_frames=300)
        save_checkpoint(tmp_path / "weights.pth", source, Checkpoint(
            role="labels", architecture="ast", network={"name": "ast_test", "fstride": 10, "tstride": 10},
            num_classes=9, num_frames=300, num_mel_bins=128, classes=[f"c{i}" for i in range(9)],
            normalization={"mean": -4.0, "std": 4.0}))
    params["models"][arch]["pretrained"] = str(tmp_path / "weights.pth")
    s = settings(params)
    train(s, "teacher", MAIN)
    assert checkpoint("teacher", s=s).network["pretrained"].endswith("weights.pth")


@pytest.mark.parametrize("arch,config", [
    ("cnn", {"name": "efficientnet_test", "pooling": "attention"}),
    ("cnn", {"name": "efficientnet_b0", "pooling": "mean"}),
    ("ast", {"name": "ast_test", "fstride": 16, "tstride": 8}),
    ("ast", {"name": "ast_tiny", "fstride": 10, "tstride": 10}),
])
def test_pipeline_runs_with_each_model_choice(in_workspace, arch, config):
    _, params = in_workspace
    params["teacher"], params["student"] = arch, "ast" if arch == "cnn" else "cnn"
    params["models"][arch].update(config, epochs=1)
    s = settings(params)
    train(s, "teacher", MAIN)
    metrics = evaluate(s, "teacher", MAIN)
    assert metrics["model"] == config["name"] and 0 <= metrics["accuracy"] <= 1


def test_cli_lists_models_and_steps():
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "ast_base" in result.output and "efficientnet_b2" in result.output
    result = runner.invoke(app, ["--help"])
    for step in ("prepare", "features", "train", "evaluate", "dump", "report"):
        assert step in result.output
    assert runner.invoke(app, ["train", "professor"]).exit_code != 0


def test_the_dump_runs_only_from_the_pinned_teacher(with_teacher):
    """Stage pick_teacher pins the direction's teacher checkpoint by its sha256; the stage's dump refuses another."""
    from pipeline.cache.dump import dump as dump_logits
    from pipeline.cache.teacher import TeacherChanged, pin

    _, params = with_teacher
    s = settings(params)
    record = pin(s, "forward", MAIN)
    assert record["architecture"] == "cnn" and record["checkpoints"][0]["path"].endswith("cnn/seed0/checkpoint.pt")
    dump_logits(s, "forward", MAIN, pinned=True)
    with open(path("teacher"), "ab") as f:  # another checkpoint under the same name
        f.write(b"\0")
    with pytest.raises(TeacherChanged, match="run stage pick_teacher again"):
        dump_logits(s, "forward", MAIN, pinned=True)
