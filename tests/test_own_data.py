"""Your own data done right: empty label sets, every bad row at once, group-disjoint splits, best-epoch selection,
`cmkd check` listing every bad file, and the report saying which classes it could not score."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from pipeline import layout
from pipeline.cli import app
from pipeline.errors import ParamsError
from pipeline.features.check import captured_stderr
from pipeline.features.extract import extract
from pipeline.manifest import ManifestError
from pipeline.prepare import prepare
from pipeline.stores.features import FeatureStore
from pipeline.task import task_for

from .conftest import MAIN, checkpoint, evaluate, path, settings, tiny, train


def _clips(folder, names, seconds=1.0):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        tone = np.sin(2 * np.pi * (300 + 200 * (i % 4)) * np.arange(int(16000 * seconds)) / 16000)
        noise = np.random.default_rng(i).standard_normal(len(tone))
        sf.write(folder / name, (0.3 * tone + 0.05 * noise).astype(np.float32), 16000)


def _manifest(path, rows):
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _user_params(repo_params, manifest, **data):
    params = tiny(repo_params)
    params["data"].update(source="manifest", manifest=str(manifest), **data)
    return params


def test_multi_label_clip_with_no_label_is_an_all_zero_target_that_trains_and_is_scored(
        tmp_path, monkeypatch, repo_params):
    user = tmp_path / "birds"
    names = [f"c{i}.wav" for i in range(48)]
    _clips(user, names)
    species = ["finch", "owl", "wren"]
    rows = [{"path": n, "labels": "" if i % 4 == 0 else species[i % 3],  # a quarter hold none of the species
             "split": ("train", "train", "val", "test")[(i // 4) % 4]} for i, n in enumerate(names)]
    _manifest(user / "labels.csv", rows)
    monkeypatch.chdir(tmp_path)
    s = settings(_user_params(repo_params, user / "labels.csv", multi_label=True))
    prepare(s)
    extract(s)
    store = FeatureStore(layout.FEATURES)
    empty = [i for i, row in enumerate(rows) if not row["labels"]]
    assert store.classes == species and (store.labels[empty] == 0).all() and store.labels.sum(1)[empty].sum() == 0
    assert (store.labels.sum(1) > 0).sum() == len(rows) - len(empty)
    train(s, "teacher", MAIN)
    metrics = evaluate(s, "teacher", MAIN)
    test_empty = [i for i in empty if rows[i]["split"] == "test"]
    assert test_empty and metrics["clips"] == 12  # the unlabelled test clips are scored as negatives
    assert 0 <= metrics["mAP"] <= 1 and metrics["classes_scored"] == 3


def test_single_label_manifest_lists_every_unlabelled_and_multi_labelled_row(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "animals"
    _clips(user, ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"])
    _manifest(user / "labels.csv", [{"path": "a.wav", "labels": "dog"}, {"path": "b.wav", "labels": ""},
                                    {"path": "c.wav", "labels": "cat;dog"}, {"path": "d.wav", "labels": ""},
                                    {"path": "e.wav", "labels": "dog;cat"}])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as error:
        prepare(settings(_user_params(repo_params, user / "labels.csv", multi_label=False)))
    message = str(error.value)
    assert "2 problems" in message
    assert "2 clips have no label" in message and "b.wav" in message and "d.wav" in message
    assert "2 clips have several labels" in message and "c (cat; dog)" in message and "e (dog; cat)" in message
    assert "set data.multi_label: true" in message


def _groups_of(manifest):
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    where = {}
    for row in rows:
        where.setdefault(row["group"], set()).add(row["split"])
    return rows, where


def test_hash_split_keeps_each_group_in_one_split(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "digits"
    rows = [{"path": f"s{speaker}_{take}.wav", "labels": str(take % 3), "group": f"speaker{speaker}"}
            for speaker in range(40) for take in range(6)]
    _manifest(user.with_suffix(".csv"), rows)
    monkeypatch.chdir(tmp_path)
    prepare(settings(_user_params(repo_params, user.with_suffix(".csv"))))
    written, where = _groups_of(layout.MANIFEST)
    assert len(where) == 40 and all(len(splits) == 1 for splits in where.values())  # no speaker in two splits
    splits = {s for splits in where.values() for s in splits}
    assert splits == {"train", "val", "test"}
    assert {r["group"] for r in written} == {f"speaker{i}" for i in range(40)}


def test_fold_runs_hold_out_validation_groups(tmp_path, monkeypatch, repo_params):
    """foldK: the fold is the test set, and the validation clips drawn from the other folds share no group with
    the training clips."""
    user = tmp_path / "sites"
    rows = [{"path": f"{site}_{i}.wav", "labels": str(i % 2), "fold": str(1 + site % 3), "group": f"site{site}"}
            for site in range(30) for i in range(4)]
    _manifest(user.with_suffix(".csv"), rows)
    monkeypatch.chdir(tmp_path)
    params = _user_params(repo_params, user.with_suffix(".csv"), split={"val": 0.3, "test": 0.0})
    params["runs"] = ["fold1", "fold2", "fold3"]
    prepare(settings(params))
    _, where = _groups_of(layout.MANIFEST)
    assert all(len(splits) == 1 for splits in where.values())
    from pipeline.manifest import read_classes, read_manifest
    from pipeline.runs import run_split

    clips = read_manifest(layout.MANIFEST, read_classes(layout.CLASSES))
    split, folds = np.array([c.split for c in clips]), np.array([c.fold for c in clips])
    groups = np.array([c.group for c in clips])
    for run in params["runs"]:
        in_run = run_split(run, split, folds)
        sets = [set(groups[in_run == part]) for part in ("train", "val", "test")]
        assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]), run


FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fsdd"


def test_fold_runs_with_few_groups_validate_on_a_whole_training_group(tmp_path, monkeypatch, repo_params):
    """FSDD as a new user runs it: six speakers, one per fold, and a hash split that put no training speaker into
    validation. Each run holds one of its own training speakers out whole, says which, and the features stage's
    store agrees; with a single training group the run says why it cannot and what to set."""
    from pipeline.prepare import read_dataset
    from pipeline.runs import ValidationSplitError, run_split

    if not (FSDD / "manifest.csv").is_file():
        pytest.skip(f"{FSDD} is not here (the real spoken-digit dataset)")
    params = _user_params(repo_params, FSDD / "manifest.csv")
    clips, _ = read_dataset(settings(params).data, tmp_path / "raw")
    split, folds = np.array([c.split for c in clips]), np.array([c.fold for c in clips])
    groups = np.array([c.group for c in clips])
    for k in range(1, 7):
        in_run = run_split(f"fold{k}", split, folds, "fsdd", groups, 0.15)
        val = set(groups[in_run == "val"])
        assert len(val) == 1 and (in_run == "val").sum() == 500, k  # one speaker, whole
        assert not val & set(groups[in_run == "train"]) and not val & set(groups[in_run == "test"])
        assert set(groups[in_run == "test"]) == set(groups[folds == k])

    two = tmp_path / "two.csv"
    _manifest(two, [{"path": f"{g}{i}.wav", "labels": "ab"[i % 2], "fold": str(1 + j), "group": g}
                    for j, g in enumerate(("alice", "bob")) for i in range(4)])
    monkeypatch.chdir(tmp_path)
    params = _user_params(repo_params, two, split={"val": 0.0, "test": 0.0})
    clips, _ = read_dataset(settings(params).data, tmp_path / "two")
    split, folds = np.array([c.split for c in clips]), np.array([c.fold for c in clips])
    with pytest.raises(ValidationSplitError, match=r"run 'fold1' of two: no validation clips, and its training clips "
                                                   r"are 1 group \('bob'\).*split column \(val\)"):
        run_split("fold1", split, folds, "two", np.array([c.group for c in clips]), 0.15)


def test_a_fold_run_that_chose_its_validation_group_says_so(in_workspace):
    """The store of a run whose manifest marks no validation clip: whole groups held out, named in one line."""
    import zarr

    from pipeline.stores.features import FeatureStore

    group = zarr.open_group(layout.FEATURES, mode="r+")
    n = group["clip_ids"].shape[0]
    group["fold"][:] = np.arange(n) % 4 + 1
    speakers = np.array([f"speaker{i % 8}" for i in range(n)])
    group["group"][:] = speakers.astype(np.dtypes.StringDType())
    group["split"][:] = np.full(n, "train").astype(np.dtypes.StringDType())
    store = FeatureStore(layout.FEATURES, "fold2")
    val = set(store.groups[store.split == "val"].tolist())
    assert val and not val & set(store.groups[store.split == "train"].tolist())
    assert store.validation_note().startswith("run fold2: the manifest marks no validation clip in its training "
                                              f"folds; validating on group{'s' if len(val) > 1 else ''} ")
    assert FeatureStore(layout.FEATURES, "fold2").split.tolist() == store.split.tolist()  # stable


def test_a_group_in_two_splits_or_folds_is_refused(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "speakers"
    _manifest(user.with_suffix(".csv"), [
        {"path": "a.wav", "labels": "x", "split": "train", "group": "alice", "fold": "1"},
        {"path": "b.wav", "labels": "x", "split": "test", "group": "alice", "fold": "1"},
        {"path": "c.wav", "labels": "y", "split": "train", "group": "bob", "fold": "1"},
        {"path": "d.wav", "labels": "y", "split": "train", "group": "bob", "fold": "2"},
    ])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as error:
        prepare(settings(_user_params(repo_params, user.with_suffix(".csv"))))
    assert "group 'alice' has clips in splits ['test', 'train']" in str(error.value)
    assert "group 'bob' has clips in folds [1, 2]" in str(error.value)


def test_esc50_validation_never_shares_a_recording_with_training(tmp_path, monkeypatch, repo_params):
    from .test_datasets import make_esc50

    make_esc50(tmp_path / "esc50", folds=2)
    monkeypatch.chdir(tmp_path)
    params = tiny(repo_params)
    params["data"].update(source="esc50", root=str(tmp_path / "esc50"), split={"val": 0.5, "test": 0.0})
    params["runs"] = ["fold1", "fold2"]
    prepare(settings(params))
    _, where = _groups_of(layout.MANIFEST)
    assert all(len(splits) == 1 for splits in where.values()) and all(g.count("-") == 1 for g in where)


def test_a_run_names_the_classes_it_has_no_training_clip_of(tmp_path, monkeypatch, repo_params):
    user = tmp_path / "tail"
    _clips(tmp_path, ["a.wav", "b.wav", "c.wav"])
    _manifest(user.with_suffix(".csv"), [
        {"path": "a.wav", "labels": "common", "split": "train"}, {"path": "b.wav", "labels": "common;rare",
                                                                   "split": "test"},
        {"path": "c.wav", "labels": "", "split": "val"}])
    monkeypatch.chdir(tmp_path)
    s = settings(_user_params(repo_params, user.with_suffix(".csv"), multi_label=True))
    prepare(s)
    extract(s)
    assert FeatureStore(layout.FEATURES).untrained_classes() == ["rare"]  # training warns with these


def test_best_epoch_is_kept_and_recorded(in_workspace):
    root, params = in_workspace
    params["models"]["cnn"]["epochs"] = 3
    params["train"]["select"] = "best"
    s = settings(params)
    train(s, "teacher", MAIN)
    ckpt = checkpoint("teacher")
    curve = [entry["val/accuracy"] for entry in ckpt.history]
    best = int(np.argmax(curve))  # the first of the best, as the loop keeps it
    assert ckpt.selection == {"select": "best", "epoch": best + 1, "val/accuracy": curve[best]}

    from pipeline.data.batches import BatchSource, ZarrRows
    from pipeline.evaluation.inference import predict
    from pipeline.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path("teacher"))
    store = FeatureStore(layout.FEATURES)
    rows = store.indices("val")
    logits = predict(model, BatchSource(ZarrRows(store)), rows, 8, store.normalization)
    assert task_for(store.multi_label).score(logits, store.labels[rows]) == curve[best]  # that epoch's weights


def test_last_epoch_is_recorded_and_best_refuses_averaging(with_teacher, repo_params):
    ckpt = checkpoint("teacher")
    assert ckpt.selection["select"] == "last" and ckpt.selection["epoch"] == len(ckpt.history)
    repo_params["train"].update(select="best", average_last=3)
    with pytest.raises(ParamsError, match="select is 'best' but average_last or ensemble_last is set"):
        settings(repo_params)


def test_cmkd_check_reports_every_bad_file_of_a_folder_in_one_run(tmp_path, monkeypatch, repo_params):
    from .test_bad_input import BAD, noise

    root = tmp_path / "folders"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            sf.write(root / cls / f"good_{cls}{i}.wav", noise(0.5, 16000, seed=i), 16000)
    for name, (make, _) in BAD.items():
        if name != "missing.wav":  # a folder holds only the files that exist
            make(root / "b" / name)
    params = tiny(repo_params)
    params["data"].update(source="folders", root=str(root))
    params["features"]["workers"] = 2
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["check", "--params", "params.yaml", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    bad = [n for n in BAD if n != "missing.wav"]
    assert report["clips"] == len(bad) + 6 and report["unusable"] == len(bad)
    listed = {Path(p["file"]).name: p for p in report["problems"]}
    assert set(listed) == set(bad)  # every bad file, in one run; none of the good ones
    for name in bad:
        assert listed[name]["kind"] == "error" and BAD[name][1] in listed[name]["problem"], name
    table = CliRunner().invoke(app, ["check", "--params", "params.yaml"])  # the table a person reads
    assert table.exit_code == 1 and f"{len(bad) + 6} clips checked: {len(bad)} cannot be used" in table.output


def test_decoder_output_is_attributed_to_the_clip(tmp_path, monkeypatch):
    """What a C decoder writes to stderr (file descriptor 2, past Python's sys.stderr) lands in the check report
    with the clip's file."""
    import pipeline.features.check as check

    with captured_stderr() as printed:
        os.write(2, b"Note: MPEG resync\n")
    assert printed == ["Note: MPEG resync"]

    def decoder_that_talks(path, frontend, frames):  # as libsndfile's MPEG decoder does on MP3 in a WAV
        os.write(2, f"Note: resync at frame 3 of {path.name}\n".encode())

    monkeypatch.setattr(check, "clip_audio", decoder_that_talks)
    from pipeline.manifest import Clip

    clips = [Clip("x", tmp_path / "x.wav", ("a",), "train"), Clip("y", tmp_path / "y.wav", ("a",), "train")]
    assert check.probe(clips, None, None) == [
        (str(tmp_path / f"{name}.wav"), "warning", f"decoder: Note: resync at frame 3 of {name}.wav")
        for name in ("x", "y")]
