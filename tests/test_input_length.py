"""features.target_frames: `auto` sizes the window from the clips (pipeline/features/length.py), and whatever the
window, `cmkd check` and the features stage say what it crops and the store records it."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.features.extract import extract
from pipeline.features.fbank import KaldiFbank
from pipeline.features.length import auto_frames, crop_report, crop_warning, resolved
from pipeline.prepare import prepare
from pipeline.settings import read_yaml
from pipeline.stores.features import FeatureStore

from .conftest import settings, tiny
from .test_own_data import _clips, _manifest

FBANK = KaldiFbank()  # 16 kHz, 25 ms frames every 10 ms


def test_auto_is_the_95th_percentile_clip_within_bounds():
    assert auto_frames(np.array([1.0] * 39 + [3.0]), FBANK) == 98  # one clip in 40 is longer: it is cropped
    assert auto_frames(np.array([1.0] * 18 + [3.0] * 2), FBANK) == 298  # one in ten: the window holds them
    assert auto_frames(np.array([60.0, 60.0]), FBANK) == 1024  # AudioSet's 10.24 s at most
    assert auto_frames(np.array([0.05]), FBANK) == 16  # the AST's patch at least
    assert auto_frames(np.array([np.nan, 2.0]), FBANK) == 198  # an unreadable file is named later, not sized


def test_the_report_of_a_1_s_window_on_5_s_clips(repo_params):
    seconds = np.full(40, 5.0)
    fixed = settings(tiny(repo_params)).features  # target_frames 100
    report = crop_report(seconds, fixed, fixed.target_frames, FBANK)
    assert report["rule"] == "features.target_frames" and report["window_seconds"] == 1.015
    assert report["cropped"] == 40 and report["cropped_share"] == 1.0
    assert report["median_lost_seconds"] == pytest.approx(3.985) and report["audio_lost_share"] == pytest.approx(0.797)
    assert "crops 40 of 40 clips (100%)" in crop_warning(report) and "features.target_frames: auto" in crop_warning(
        report)
    auto = settings(tiny(repo_params) | {"features": {**tiny(repo_params)["features"], "target_frames": "auto"}})
    sized = resolved(auto.features, seconds, FBANK)
    report = crop_report(seconds, auto.features, sized.target_frames, FBANK)
    assert sized.target_frames == 498 and report["rule"].startswith("auto: the 95th percentile")
    assert report["cropped"] == 0 and crop_warning(report) is None


def test_check_and_the_store_say_what_the_window_crops(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "recordings"
    names = [f"c{i}.wav" for i in range(12)]
    _clips(user, names, seconds=5.0)
    _manifest(user / "labels.csv", [{"path": n, "labels": "ab"[i % 2], "split": ("train", "val", "test")[i % 3]}
                                    for i, n in enumerate(names)])
    params = tiny(repo_params)
    params["data"].update(source="manifest", manifest=str(user / "labels.csv"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    assert read_yaml(tmp_path / "params.yaml")["features"]["target_frames"] == 100

    said = CliRunner().invoke(app, ["check"])
    assert said.exit_code == 0, said.output
    text = " ".join(said.output.split())
    assert "window: 100 frames (1.015 s; features.target_frames); it crops 12 of 12 clips (100%)" in text
    assert "a cropped clip loses a median 3.985 s (80% of it)" in text

    params["features"]["target_frames"] = "auto"
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    said = " ".join(CliRunner().invoke(app, ["check"]).output.split())
    assert "window: 498 frames (4.995 s; auto: the 95th percentile" in said and "it crops 0 of 12 clips" in said
    s = settings(params)
    prepare(s)
    extract(s)
    attrs = FeatureStore("data/features.zarr").group.attrs
    assert attrs["input_length"]["target_frames"] == 498 and attrs["input_length"]["rule"].startswith("auto")
    assert attrs["feature_params"]["target_frames"] == 498
