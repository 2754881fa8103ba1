"""Each supported dataset layout, built tiny (odd sample rates, stereo, multi-label), through prepare and features."""
import copy
import csv
import json

import numpy as np
import pytest
import soundfile as sf

from pipeline import layout
from pipeline.features.extract import write_feature_store
from pipeline.manifest import ManifestError, read_classes, read_manifest
from pipeline.prepare import prepare
from pipeline.settings import FeatureSettings
from pipeline.stores.features import FeatureStore

from .conftest import ESC50, settings


def write_clip(path, seconds=1.0, sample_rate=16000, channels=1, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal((int(seconds * sample_rate), channels))).astype(np.float32), sample_rate)


def run_prepare(repo_params, monkeypatch, tmp_path, **data) -> tuple[list, list[str], dict]:
    params = copy.deepcopy(repo_params)
    params["data"].update(data)
    work = tmp_path / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    prepare(settings(params))
    classes = read_classes(layout.CLASSES)
    return read_manifest(layout.MANIFEST, classes), classes, params


def make_esc50(root, folds=5, classes=("dog", "rain", "crow")):
    rows = []
    for fold in range(1, folds + 1):
        for target, category in enumerate(classes):
            for take in "AB":
                name = f"{fold}-{100 + target}-{take}-{target}.wav"
                # odd rates and channel counts on purpose: the features stage resamples and downmixes
                write_clip(root / "audio" / name, 0.5, (44100, 22050, 16000)[target], 1 + target % 2, seed=len(rows))
                rows.append({"filename": name, "fold": fold, "target": target, "category": category,
                             "esc10": "False", "src_file": 100 + target, "take": take})
    (root / "meta").mkdir(parents=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_esc50_folds_labels_and_per_run_train_only_statistics(repo_params, monkeypatch, tmp_path):
    make_esc50(tmp_path / "esc50")
    clips, classes, params = run_prepare(repo_params, monkeypatch, tmp_path, source="esc50",
                                         root=str(tmp_path / "esc50"))
    assert classes == ["dog", "rain", "crow"]  # ESC-50's target order, not alphabetical
    assert len(clips) == 30
    assert [c.fold for c in clips] == [int(c.clip_id.split("-")[0]) for c in clips]
    assert {c.split for c in clips} <= {"train", "val"}  # the test set is chosen by the run, not the manifest
    assert all(c.labels == (classes[int(c.clip_id.rsplit("-", 1)[1])],) for c in clips)

    cfg = FeatureSettings(target_frames=60, clips_per_shard=8)
    write_feature_store(layout.MANIFEST, layout.CLASSES, layout.FEATURES, cfg, multi_label=False)
    everything = FeatureStore(layout.FEATURES, "fold1").features[:].astype(np.float64)
    for fold in (1, 2, 5):
        store = FeatureStore(layout.FEATURES, f"fold{fold}")
        ids = np.array([c.clip_id for c in clips])
        assert {i.split("-")[0] for i in ids[store.split == "test"]} == {str(fold)}
        assert sum(store.split == "test") == 6 and not (store.split[store.folds != fold] == "test").any()
        val = np.array([c.split == "val" for c in clips])
        np.testing.assert_array_equal(store.split == "val", val & (store.folds != fold))
        train = everything[store.split == "train"]  # this run's training clips alone
        norm = store.normalization
        assert norm.mean == pytest.approx(train.mean(), rel=1e-6) and norm.std == pytest.approx(train.std(), rel=1e-4)
    assert FeatureStore(layout.FEATURES, "fold1").normalization != FeatureStore(layout.FEATURES, "fold2").normalization
    assert (store.group["num_frames"][:] == 48).all()  # 0.5 s at any input rate -> 8000 samples at 16 kHz
    np.testing.assert_array_equal(store.labels.sum(axis=1), 1)
    with pytest.raises(ValueError, match="has no clips in fold 7"):
        FeatureStore(layout.FEATURES, "fold7")
    with pytest.raises(ValueError, match="no clips in split 'test' of run 'main' \\(a dataset with folds needs runs"):
        FeatureStore(layout.FEATURES, "main").indices("test")


def test_esc50_rejects_a_fold_that_does_not_exist(repo_params, monkeypatch, tmp_path):
    make_esc50(tmp_path / "esc50", folds=1)
    meta = tmp_path / "esc50" / "meta" / "esc50.csv"
    meta.write_text(meta.read_text().replace("1-100-A-0.wav,1,", "1-100-A-0.wav,7,"))
    with pytest.raises(ManifestError, match="1-100-A-0.wav is in fold 7"):
        run_prepare(repo_params, monkeypatch, tmp_path, source="esc50", root=str(tmp_path / "esc50"))


@pytest.mark.skipif(not ESC50.exists(), reason="ESC-50 not present")
def test_the_real_esc50(repo_params, monkeypatch, tmp_path):
    clips, classes, _ = run_prepare(repo_params, monkeypatch, tmp_path, source="esc50", root=str(ESC50))
    assert len(clips) == 2000 and len(classes) == 50 and classes[0] == "dog"
    assert [sum(c.fold == k for c in clips) for k in range(1, 6)] == [400] * 5
    assert all(c.path.is_file() for c in clips[:50])


def test_fsd50k_multi_label_with_its_own_splits(repo_params, monkeypatch, tmp_path):
    root = tmp_path / "fsd50k"
    truth = root / "FSD50K.ground_truth"
    truth.mkdir(parents=True)
    (truth / "vocabulary.csv").write_text("0,Bark,/m/05tny_\n1,Rain,/m/06mb1\n2,Speech,/m/09x0r\n")
    (truth / "dev.csv").write_text('fname,labels,mids,split\n11,"Bark,Speech","/m/05tny_,/m/09x0r",train\n'
                                   '12,Rain,/m/06mb1,train\n13,Speech,/m/09x0r,val\n')
    (truth / "eval.csv").write_text('fname,labels,mids\n21,"Rain,Bark","/m/06mb1,/m/05tny_"\n')
    for name, rate in (("dev_audio/11", 44100), ("dev_audio/12", 16000), ("dev_audio/13", 32000),
                       ("eval_audio/21", 8000)):
        write_clip(root / f"FSD50K.{name}.wav", 0.3, rate)
    clips, classes, params = run_prepare(repo_params, monkeypatch, tmp_path, source="fsd50k", root=str(root),
                                         multi_label=True)
    assert classes == ["Bark", "Rain", "Speech"]
    assert [(c.clip_id, c.labels, c.split) for c in clips] == [
        ("dev/11", ("Bark", "Speech"), "train"), ("dev/12", ("Rain",), "train"), ("dev/13", ("Speech",), "val"),
        ("eval/21", ("Rain", "Bark"), "test")]
    write_feature_store(layout.MANIFEST, layout.CLASSES, layout.FEATURES,
                        FeatureSettings(target_frames=40, clips_per_shard=2), multi_label=True)
    np.testing.assert_array_equal(FeatureStore(layout.FEATURES).labels, [[1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0]])


def test_fsd50k_is_refused_as_single_label(repo_params, monkeypatch, tmp_path):
    root = tmp_path / "fsd50k"
    (root / "FSD50K.ground_truth").mkdir(parents=True)
    (root / "FSD50K.ground_truth" / "vocabulary.csv").write_text("0,Bark,/m/a\n1,Rain,/m/b\n")
    (root / "FSD50K.ground_truth" / "dev.csv").write_text('fname,labels,mids,split\n1,"Bark,Rain","/m/a,/m/b",train\n')
    (root / "FSD50K.ground_truth" / "eval.csv").write_text("fname,labels,mids\n")
    several = r"(?s)1 clips have several labels, but data.multi_label is false .*: dev/1 \(Bark; Rain\)"
    with pytest.raises(ManifestError, match=several):
        run_prepare(repo_params, monkeypatch, tmp_path, source="fsd50k", root=str(root), multi_label=False)


def test_audioset_ast_data_files(repo_params, monkeypatch, tmp_path):
    root = tmp_path / "audioset"
    for name in ("a", "b", "c", "d"):
        write_clip(root / "wav" / f"{name}.wav", 0.3, 48000, 2)
    (root / "class_labels_indices.csv").write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music"\n'
                                                   '2,/m/0jbk,"Animal, pets"\n')
    train = {"data": [{"wav": "wav/a.wav", "labels": "/m/09x0r,/m/0jbk"}, {"wav": "wav/b.wav", "labels": "/m/04rlf"},
                      {"wav": "wav/c.wav", "labels": "/m/04rlf"}]}
    (root / "train.json").write_text(json.dumps(train))
    (root / "eval.json").write_text(json.dumps({"data": [{"wav": str(root / "wav/d.wav"), "labels": "/m/0jbk"}]}))
    files = {"train": str(root / "train.json"), "val": None, "test": str(root / "eval.json"),
             "class_index": str(root / "class_labels_indices.csv")}
    clips, classes, _ = run_prepare(repo_params, monkeypatch, tmp_path, source="audioset", audioset=files,
                                    multi_label=True, split={"val": 0.5, "test": 0.0})
    assert classes == ["Speech", "Music", "Animal, pets"]
    assert [c.labels for c in clips] == [("Speech", "Animal, pets"), ("Music",), ("Music",), ("Animal, pets",)]
    assert clips[3].split == "test" and {c.split for c in clips[:3]} <= {"train", "val"}
    assert all(c.path.is_file() for c in clips)

    train["data"].append({"wav": "wav/a.wav", "labels": "/m/nothere"})
    (root / "train.json").write_text(json.dumps(train))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError, match=r"train.json: entry 3 .* labels \['/m/nothere'\]"):
        run_prepare(repo_params, monkeypatch, tmp_path / "again", source="audioset", audioset=files, multi_label=True)


def test_folder_per_class(repo_params, monkeypatch, tmp_path):
    root = tmp_path / "mine"
    for label, names in {"cat": ["c1", "c2", "both"], "dog": ["d1", "both"]}.items():
        for name in names:
            write_clip(root / label / f"{name}.flac", 0.4, 22050)
    (root / "dog" / "notes.txt").write_text("not audio")
    clips, classes, _ = run_prepare(repo_params, monkeypatch, tmp_path, source="folders", root=str(root),
                                    multi_label=True)
    assert classes == ["cat", "dog"]
    assert {c.clip_id: c.labels for c in clips} == {"c1": ("cat",), "c2": ("cat",), "both": ("cat", "dog"),
                                                    "d1": ("dog",)}
    with pytest.raises(ManifestError, match=r"(?s)several labels.*: both \(cat; dog\)"):
        run_prepare(repo_params, monkeypatch, tmp_path / "single", source="folders", root=str(root))
