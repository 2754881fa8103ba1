"""A user's own manifest: any sample rate and channel count, labels checked, splits stable."""
import csv

import numpy as np
import pytest
import soundfile as sf

from pipeline import layout
from pipeline.features.extract import extract
from pipeline.manifest import ManifestError
from pipeline.prepare import prepare
from pipeline.stores.features import FeatureStore

from .conftest import settings


def _write_clips(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, rate, channels, seconds in rows:
        sf.write(folder / name, (rng.standard_normal((int(rate * seconds), channels)) * 0.1).astype(np.float32), rate)


def _manifest(path, rows, fields):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_user_manifest_through_features(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "mydata"
    _write_clips(user / "wav", [("a.wav", 44100, 2, 1.5), ("b.flac", 8000, 1, 0.5), ("c.wav", 16000, 1, 3.0),
                                ("d.wav", 22050, 1, 1.0)])
    _manifest(user / "labels.csv", [
        {"path": "wav/a.wav", "labels": "dog", "split": "train"},
        {"path": "wav/b.flac", "labels": "cat;dog", "split": "train"},
        {"path": "wav/c.wav", "labels": "bird", "split": "val"},
        {"path": "wav/d.wav", "labels": "cat", "split": "test"},
    ], ["path", "labels", "split"])
    monkeypatch.chdir(tmp_path)
    params = repo_params
    params["data"].update(source="manifest", manifest=str(user / "labels.csv"), multi_label=True)
    params["features"].update(target_frames=120, clips_per_shard=2)
    prepare(settings(params))
    extract(settings(params))

    store = FeatureStore(layout.FEATURES)
    assert store.classes == ["bird", "cat", "dog"]  # sorted labels when no class file is given
    assert list(store.clip_ids) == ["wav/a", "wav/b", "wav/c", "wav/d"]
    np.testing.assert_array_equal(store.labels, [[0, 0, 1], [0, 1, 1], [1, 0, 0], [0, 1, 0]])
    assert store.features.shape == (4, 120, 128)
    frames = store.group["num_frames"][:]
    assert list(frames) == [148, 48, 298, 98]  # 1.5 s, 0.5 s, 3 s, 1 s at 16 kHz, before padding or cropping
    assert not store.features[1, 48:].any()  # padded with zeros


def test_user_manifest_label_outside_class_list(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "mydata"
    _write_clips(user, [("a.wav", 16000, 1, 1.0)])
    _manifest(user / "labels.csv", [{"path": "a.wav", "labels": "unicorn"}], ["path", "labels"])
    (user / "classes.txt").write_text("cat\ndog\n")
    monkeypatch.chdir(tmp_path)
    repo_params["data"].update(source="manifest", manifest=str(user / "labels.csv"), classes=str(user / "classes.txt"))
    with pytest.raises(ManifestError, match=r"a.wav\): labels \['unicorn'\] are not in the class list"):
        prepare(settings(repo_params))


def test_hash_splits_are_stable_and_follow_fractions(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "mydata"
    user.mkdir()
    rows = [{"path": f"clip{i}.wav", "labels": "x"} for i in range(2000)]
    _manifest(user / "labels.csv", rows, ["path", "labels"])
    monkeypatch.chdir(tmp_path)
    repo_params["data"].update(source="manifest", manifest=str(user / "labels.csv"))
    prepare(settings(repo_params))
    first = (tmp_path / "data/raw/manifest.csv").read_text()
    splits = [r["split"] for r in csv.DictReader(open(tmp_path / "data/raw/manifest.csv"))]
    fractions = repo_params["data"]["split"]
    assert all(abs(splits.count(split) / 2000 - fractions[split]) < 0.03 for split in ("val", "test"))
    _manifest(user / "labels.csv", rows + [{"path": "new.wav", "labels": "x"}], ["path", "labels"])
    prepare(settings(repo_params))
    assert (tmp_path / "data/raw/manifest.csv").read_text().startswith(first)  # old clips keep their split
