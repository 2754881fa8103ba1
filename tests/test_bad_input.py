"""Each kind of bad audio file: a clear error naming the file and the problem (finished shards kept), or with
features.on_error: skip, the clip left out of every split and listed in the skip list while the run goes on."""
import csv

import numpy as np
import pytest
import soundfile as sf
import zarr

from pipeline import layout
from pipeline.errors import ParamsError
from pipeline.features.audio import AudioError, load_audio
from pipeline.features.extract import write_feature_store
from pipeline.manifest import write_manifest
from pipeline.settings import FeatureSettings
from pipeline.stores.features import FeatureStore
from pipeline.validation import settings_from

CFG = FeatureSettings(target_frames=50, clips_per_shard=4, workers=1, scheduler="synchronous", device="cpu")


def noise(seconds, rate, channels=1, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal((int(seconds * rate), channels))).astype(np.float32)


def truncated(path):
    sf.write(path, noise(1.0, 16000), 16000)
    path.write_bytes(path.read_bytes()[:12000])


BAD = {  # name -> (how to make it, what the error says)
    "empty.wav": (lambda p: p.write_bytes(b""), "empty file"),
    "silent.wav": (lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), "silent"),
    "truncated.wav": (truncated, "truncated"),
    "text.wav": (lambda p: p.write_text("id,label\n1,dog\n"), "cannot decode audio"),
    "short.wav": (lambda p: sf.write(p, noise(0.01, 16000), 16000), "too short"),
    "nan.wav": (lambda p: sf.write(p, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN"),
    "missing.wav": (lambda p: None, "file not found"),
}
GOOD = {  # unusual but fine: resampled, downmixed, cropped
    "stereo.wav": lambda p: sf.write(p, noise(1.0, 16000, channels=2), 16000),
    "rate8k.flac": lambda p: sf.write(p, noise(1.0, 8000), 8000),
    "rate44k.wav": lambda p: sf.write(p, noise(0.7, 44100), 44100),
    "long.flac": lambda p: sf.write(p, noise(120.0, 8000), 8000),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_file_is_named_with_its_problem(tmp_path, name):
    make, message = BAD[name]
    make(tmp_path / name)
    with pytest.raises(AudioError, match=f"{name}: .*{message}"):
        load_audio(tmp_path / name, 16000, min_samples=400)


def test_odd_but_valid_files_load(tmp_path):
    for name, make in GOOD.items():
        make(tmp_path / name)
        wave = load_audio(tmp_path / name, 16000, max_seconds=2.0)
        assert wave.ndim == 1 and 0 < len(wave) <= 32000, name


def make_dataset(root):
    """The bad clips first, then odd but valid ones, then plain ones (the features stage names its Dask tasks by
    block, and Dask's local scheduler starts from the last, so the plain shards finish before a bad clip stops)."""
    rows = []
    for name, (make, _) in BAD.items():
        make(root / name)
        rows.append({"clip_id": name, "path": name, "labels": ["b"], "split": "train"})
    for name, make in GOOD.items():
        make(root / name)
        rows.append({"clip_id": name, "path": name, "labels": ["a"], "split": "train"})
    for i in range(10):
        sf.write(root / f"good{i}.wav", noise(0.6, 16000, seed=i), 16000)
        rows.append({"clip_id": f"good{i}", "path": f"good{i}.wav", "labels": ["a" if i % 2 else "b"],
                     "split": ("train", "train", "val", "test")[i % 4]})
    write_manifest(root / "manifest.csv", rows, ["a", "b"])
    return rows


def test_fail_mode_names_every_bad_file_in_one_run_and_keeps_finished_shards(tmp_path):
    out = tmp_path / "features.zarr"
    rows = make_dataset(tmp_path)
    with pytest.raises(AudioError) as error:
        write_feature_store(tmp_path / "manifest.csv", tmp_path / "classes.txt", out, CFG, False)
    message = str(error.value)
    assert f"{len(BAD)} of {len(rows)} clips cannot be used" in message
    listed = {line.split()[0]: line for line in message.splitlines()[1:]}
    assert set(listed) == {str(tmp_path / name) for name in BAD}  # every bad file, each once, none of the good
    for name, (_, problem) in BAD.items():
        assert problem in listed[str(tmp_path / name)], name
    partial = tmp_path / "features.zarr.partial"
    assert not out.exists() and partial.exists()
    done = set(np.flatnonzero(zarr.open_group(partial, mode="r")["_done"][:]).tolist())
    ids = [r["clip_id"] for r in rows]
    bad_shards = {ids.index(name) // CFG.clips_per_shard for name in BAD}
    all_shards = set(range(-(-len(rows) // CFG.clips_per_shard)))
    assert done == all_shards - bad_shards  # every shard without a bad clip is written and kept
    written = {b: (partial / f"features/c/{b}/0/0").stat().st_mtime_ns for b in done}

    for name in BAD:  # the user fixes the files, and the run goes on from where it stopped
        sf.write(tmp_path / name, noise(0.6, 16000, seed=99), 16000)
    write_feature_store(tmp_path / "manifest.csv", tmp_path / "classes.txt", out, CFG, False)
    store = FeatureStore(out)
    assert (store.skipped == "").all() and len(store.clip_ids) == 21
    assert all((out / f"features/c/{b}/0/0").stat().st_mtime_ns == t for b, t in written.items())


def test_switching_on_error_to_skip_keeps_the_finished_shards(tmp_path):
    out = tmp_path / "features.zarr"
    rows = make_dataset(tmp_path)
    with pytest.raises(AudioError):
        write_feature_store(tmp_path / "manifest.csv", tmp_path / "classes.txt", out, CFG, False)
    partial = tmp_path / "features.zarr.partial"
    done = np.flatnonzero(zarr.open_group(partial, mode="r")["_done"][:])
    written = {b: (partial / f"features/c/{b}/0/0").stat().st_mtime_ns for b in done}
    assert len(done)

    skip = CFG.model_copy(update={"on_error": "skip"})
    write_feature_store(tmp_path / "manifest.csv", tmp_path / "classes.txt", out, skip, False,
                        skipped_list=tmp_path / "skipped.csv")
    assert all((out / f"features/c/{b}/0/0").stat().st_mtime_ns == t for b, t in written.items())  # not redone
    store = FeatureStore(out)
    assert set(store.clip_ids[store.skipped != ""]) == set(BAD)
    fresh = tmp_path / "fresh.zarr"  # the same store as a skip run from scratch, shard for shard
    write_feature_store(tmp_path / "manifest.csv", tmp_path / "classes.txt", fresh, skip, False)
    np.testing.assert_array_equal(FeatureStore(fresh).features[:], store.features[:])
    np.testing.assert_array_equal(FeatureStore(fresh).skipped, store.skipped)
    assert len(rows) == len(store.clip_ids)


def test_skip_option_lists_bad_files_and_goes_on(tmp_path):
    rows = make_dataset(tmp_path)
    out, skipped = tmp_path / "features.zarr", tmp_path / "skipped.csv"
    write_feature_store(tmp_path / "manifest.csv", tmp_path / "classes.txt", out,
                        CFG.model_copy(update={"on_error": "skip"}), False, skipped_list=skipped)
    with open(skipped, newline="") as f:
        listed = {row["clip_id"]: row["reason"] for row in csv.DictReader(f)}
    assert set(listed) == set(BAD)
    for name, (_, message) in BAD.items():
        assert name in listed[name] and message in listed[name]
    store = FeatureStore(out)
    ids = list(store.clip_ids)
    assert len(ids) == len(rows)  # rows stay in manifest order; the bad ones are in no split
    bad_rows = [ids.index(name) for name in BAD]
    assert (store.split[bad_rows] == "skipped").all()
    assert not set(bad_rows) & set(store.indices("train"))
    good = [i for i in range(len(ids)) if i not in bad_rows]
    assert (store.split[good] != "skipped").all() and (store.group["num_frames"][good] > 0).all()
    assert store.group["num_frames"][ids.index("long.flac")] > CFG.target_frames  # cropped, not refused
    from pipeline.audit import inspect_features

    summary = inspect_features(out)["summary"]  # a skipped clip has no frames: it is not counted as padded
    frames = store.group["num_frames"][:]
    assert summary["skipped clips"] == len(BAD)
    assert summary["clips padded"] == int((frames[good] < CFG.target_frames).sum())


def test_skip_on_a_clean_dataset_writes_an_empty_list(in_workspace):
    root, params = in_workspace
    out = root / "clean.zarr"
    params["features"]["on_error"] = "skip"
    write_feature_store(layout.MANIFEST, layout.CLASSES, out, settings_from(params).features, False,
                        skipped_list=root / "skipped.csv")
    assert (root / "skipped.csv").read_text().strip() == "clip_id,path,reason"


def test_on_error_must_be_fail_or_skip(repo_params):
    repo_params["features"]["on_error"] = "ignore"
    with pytest.raises(ParamsError, match="features.on_error = 'ignore': Input should be 'fail' or 'skip'"):
        settings_from(repo_params)
