"""`cmkd inspect` on every kind of artifact, as tables and as JSON; the cache's metrics recomputed from it."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import layout
from pipeline.cli import app
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore
from pipeline.task import task_for
from pipeline.task.metrics import compute

from .conftest import MAIN, cache_path, evaluate, name, path, settings


def inspect_json(*args) -> dict:
    result = CliRunner().invoke(app, ["inspect", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_inspect_every_artifact(with_teacher):
    _, params = with_teacher
    evaluate(settings(params), "teacher", MAIN)
    store, cache = FeatureStore(layout.FEATURES), PredictionStore(cache_path())

    features = inspect_json(layout.FEATURES)
    assert features["kind"] == "feature store" and features["summary"]["clips"] == 64
    x = store.features[:].astype(np.float64)
    assert features["features"]["mean"] == pytest.approx(x.mean()) and features["features"]["nan"] == 0
    array = {a["array"]: a for a in features["arrays"]}["features"]
    assert array["shape"] == [64, 100, 128] and array["chunks"] == [1, 100, 128] and array["shards"] == [16, 100, 128]
    assert array["bytes on disk"] > 0 and features["classes"] == store.classes
    provenance = features["provenance"]
    assert provenance["code"]["source_sha256"] and provenance["fingerprint"] == store.fingerprint

    predictions = inspect_json(cache_path())
    assert predictions["summary"]["matches the feature store"] and predictions["summary"]["run"] == "main"
    test = store.indices("test")
    expected = compute(task_for(store.multi_label), cache.logits[:][test], store.labels[test])
    from_cache = predictions["teacher metrics and targets from the cache (tau 1)"]
    assert from_cache["test"]["accuracy"] == pytest.approx(expected["accuracy"])
    evaluated = json.loads(layout.metrics(name("teacher"), MAIN).read_text())  # the evaluate stage agrees
    # with the cache
    assert from_cache["test"]["accuracy"] == pytest.approx(evaluated["accuracy"])
    assert 0 < from_cache["train"]["entropy"] < np.log(len(store.classes)) + 1e-9  # target statistics per split
    calibration = next(v for k, v in predictions.items() if k.startswith("calibration"))
    assert 0 <= calibration["ECE"] <= 1
    assert all({"true", "predicted", "clips"} <= set(row) for row in predictions["where it errs most"])

    clip = str(store.clip_ids[5])
    one = inspect_json(cache_path(), "--clip", clip)["clip"]
    assert one["clip_id"] == clip and one["labels"] == [store.classes[int(store.labels[5].argmax())]]
    assert len(one["teacher top 5"]) == min(5, len(store.classes))
    assert one["mean"] == pytest.approx(store.features[5].astype(np.float64).mean())

    checkpoint = inspect_json(path("teacher"))
    assert checkpoint["provenance"]["run"] == "main" and checkpoint["summary"]["nan or inf values"] == 0
    assert checkpoint["provenance"]["normalization"]["mean"] == pytest.approx(store.normalization.mean)
    commit = checkpoint["provenance"]["code"]["git_commit"]
    assert commit is None or len(commit) == 40
    assert inspect_json(layout.metrics(name("teacher"), MAIN))["values"]["run"] == "main"

    kept = inspect_json(layout.held_out_logits(name("teacher"), MAIN))  # what the evaluation scored
    assert kept["summary"]["test clips"] == len(test) and kept["summary"]["nan or inf logits"] == 0
    assert kept["accuracy per split"]["test"] == pytest.approx(evaluated["accuracy"], abs=1e-4)
    assert kept["accuracy per split"]["val"] == pytest.approx(evaluated["val_accuracy"], abs=1e-4)
    held = inspect_json(layout.held_out_logits(name("teacher"), MAIN), "--clip", str(store.clip_ids[test[0]]))
    assert held["clip"]["split"] == "test" and len(held["clip"]["top 5"]) == min(5, len(store.classes))

    tables = CliRunner().invoke(app, ["inspect", str(cache_path())])
    assert tables.exit_code == 0
    assert "teacher metrics and targets from the cache" in tables.output and "where it errs most" in tables.output


def test_inspect_refuses_what_it_does_not_know(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "notes.txt")])
    assert result.exit_code != 0 and "not a feature store" in str(result.exception)
