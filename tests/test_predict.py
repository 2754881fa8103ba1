"""`cmkd predict`: a checkpoint the pipeline trained, on audio files: the same logits as the pipeline's own
evaluation for a clip it knows, windows for longer clips, JSON and CSV output, real ESC-50 recordings."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline import layout
from pipeline.cli import app
from pipeline.data.batches import BatchSource, ZarrRows
from pipeline.evaluation.inference import predict as predict_rows
from pipeline.features.audio import AudioError
from pipeline.models.checkpoint import load_checkpoint
from pipeline.predict import Predictor
from pipeline.stores.features import FeatureStore

from .conftest import ESC50, MAIN, path


def manifest_paths() -> dict[str, Path]:
    with open(layout.MANIFEST, newline="") as f:
        return {row["clip_id"]: layout.MANIFEST.parent / row["path"] for row in csv.DictReader(f)}


def test_a_known_clip_gets_the_logits_the_pipeline_evaluated(with_teacher):
    store = FeatureStore(layout.FEATURES, MAIN.split)
    model, _ = load_checkpoint(path("teacher"))
    rows = np.arange(4)
    expected = predict_rows(model, BatchSource(ZarrRows(store), None, 0), rows, 4, store.normalization)
    manifest = manifest_paths()
    paths = [manifest[str(c)] for c in store.clip_ids[rows]]
    predictor = Predictor(path("teacher"), batch_size=3, dev=torch.device("cpu"))
    got = list(predictor.predict(paths))
    assert [p.windows for p in got] == [1, 1, 1, 1]  # 1 s clips fit the 100-frame window
    np.testing.assert_allclose(np.stack([p.logits for p in got]), expected, atol=1e-5)


@pytest.mark.skipif(not ESC50.is_dir(), reason="the real ESC-50 is not here")
def test_real_esc50_recordings_are_scored_in_windows(with_teacher, tmp_path):
    files = sorted((ESC50 / "audio").glob("*.flac"))[:3]
    checkpoint = path("teacher")
    predictor = Predictor(checkpoint, dev=torch.device("cpu"))
    windows = predictor.windows(files[0])  # 5 s = 500 frames in 100-frame windows, 50 apart: 9
    assert windows.shape == (9, 100, 128)
    with torch.no_grad():
        per_window = predictor.model((windows - predictor.normalization.mean) / (2 * predictor.normalization.std))
    mean, peak = next(predictor.predict(files[:1])), next(predictor.predict(files[:1], aggregate="max"))
    np.testing.assert_allclose(mean.logits, per_window.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(peak.logits, per_window.max(0).values.numpy(), atol=1e-5)

    result = CliRunner().invoke(app, ["predict", str(checkpoint), *map(str, files), "--json", "--top", "2",
                                      "--out", str(tmp_path / "scores.csv")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [r["path"] for r in lines] == list(map(str, files))
    assert all(len(r["logits"]) == len(r["classes"]) == len(predictor.classes) and len(r["top"]) == 2 for r in lines)
    np.testing.assert_allclose(lines[0]["logits"], mean.logits, atol=1e-5)
    with open(tmp_path / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == list(map(str, files)) and rows[0]["windows"] == "9"
    assert float(rows[0][predictor.classes[0]]) == pytest.approx(lines[0]["logits"][0], abs=1e-5)


def test_an_unreadable_file_is_named_or_skipped(with_teacher, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not audio")
    good = next(iter(manifest_paths().values()))
    predictor = Predictor(path("teacher"), dev=torch.device("cpu"))
    with pytest.raises(AudioError, match="broken.wav"):
        list(predictor.predict([good, bad]))
    skipped = []
    assert [p.path.name for p in predictor.predict([bad, good], on_error="skip", skipped=skipped)] == [good.name]
    assert skipped[0][0] == bad
