"""Teacher predictions made elsewhere (dump.source: import): each file shape the peers publish, and each way such a
file goes wrong, either mapped correctly (checked value by value against the teacher's own cache) or refused with a
message naming the problem."""
import csv
import json
import pickle

import numpy as np
import pytest

from pipeline import layout
from pipeline.audit import inspect_predictions
from pipeline.cache.imported import ImportProblem, normalise_id
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore
from pipeline.stores.schema import StoreMismatchError
from pipeline.task import task_for

from .conftest import MAIN, cache_path, dump, settings


@pytest.fixture
def reference(with_teacher):
    """The tiny workspace's own cache (the teacher's logits, by clip id) and its feature store."""
    root, params = with_teacher
    cache = PredictionStore(cache_path())
    store = FeatureStore(layout.FEATURES, MAIN.split)
    return root, params, store, dict(zip(map(str, cache.clip_ids), cache.logits[:]))


def imported(params, **cfg):
    params["dump"].update(source="import", imported=cfg)
    dump(settings(params), MAIN)
    cache = PredictionStore(cache_path())
    return cache, dict(zip(map(str, cache.clip_ids), cache.logits[:]))


def test_ids_are_normalised_like_the_peers_write_them():
    assert normalise_id("Y--PJHxphWEs_30.000_40.000.wav") == "--PJHxphWEs"    # AudioSet file, AST recipe
    assert normalise_id("audio/--PJHxphWEs.flac") == normalise_id("--PJHxphWEs") == "--PJHxphWEs"  # EfficientAT
    assert normalise_id("Y--PJHxphWEs_30000_40000") == "--PJHxphWEs"
    assert normalise_id("/data/ESC-50/audio/1-100032-A-0.wav") == "1-100032-A-0"  # not a YouTube id: kept whole
    assert normalise_id("clip00012") == "clip00012"


def test_npy_with_shuffled_ids_and_another_class_order_maps_value_by_value(reference, tmp_path):
    _, params, store, own = reference
    rng = np.random.default_rng(0)
    ids = rng.permutation(list(own))                      # rows in another order
    order = rng.permutation(len(store.classes))           # columns in another class order
    np.save(tmp_path / "logits.npy", np.stack([own[i] for i in ids])[:, order])
    with open(tmp_path / "ids.pkl", "wb") as f:          # ids as file names, as EfficientAT's map has them
        pickle.dump({f"audio/{i}.wav": row for row, i in enumerate(ids)}, f)
    (tmp_path / "classes.txt").write_text("\n".join(store.classes[c] for c in order) + "\n")
    cache, got = imported(params, path=str(tmp_path / "logits.npy"), index=str(tmp_path / "ids.pkl"),
                          classes=str(tmp_path / "classes.txt"), teacher="EfficientAT PaSST ensemble")
    assert set(got) == set(own)
    for clip, logits in own.items():
        np.testing.assert_array_equal(got[clip], logits)  # value by value
    assert cache.teacher["imported"]["teacher"] == "EfficientAT PaSST ensemble"
    coverage = json.loads(layout.coverage("forward", MAIN).read_text())
    assert coverage["matched"] == len(own) and coverage["unknown (in the file, not in the feature store)"] == 0
    report = inspect_predictions(cache_path())  # the teacher's metrics recomputed from the import
    assert report["summary"]["imported from"]["sha256"] == cache.teacher["imported"]["sha256"]
    rows = store.indices("test")
    test = task_for(store.multi_label).score(np.stack([own[str(c)] for c in store.clip_ids[rows]]),
                                             store.labels[rows])
    assert report["teacher metrics and targets from the cache (tau 1)"]["test"]["accuracy"] == pytest.approx(test)


def test_csv_of_probabilities_with_missing_and_unknown_ids(reference, tmp_path):
    _, params, store, own = reference
    clips = list(own)
    train = [str(c) for c in store.clip_ids[store.indices("train")]]
    dropped = set(train[:3])
    probs = {c: np.exp(own[c]) / np.exp(own[c]).sum() for c in clips}
    with open(tmp_path / "teacher.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", *store.classes])
        for c in clips:
            if c not in dropped:
                w.writerow([f"{c}.wav", *probs[c]])
        w.writerow(["Yabcdefghijk.wav", *np.full(len(store.classes), 1 / len(store.classes))])  # not in the store
    _, got = imported(params, path=str(tmp_path / "teacher.csv"), outputs="probabilities")
    assert set(got) == set(clips) - dropped
    for c in got:  # log p: the same softmax as the teacher's logits
        p = np.exp(got[c]) / np.exp(got[c]).sum()
        np.testing.assert_allclose(p, probs[c], rtol=1e-4, atol=1e-7)
    coverage = json.loads(layout.coverage("forward", MAIN).read_text())
    assert coverage["missing (in the feature store, not in the file)"]["train"] == 3
    assert coverage["unknown (in the file, not in the feature store)"] == 1
    assert coverage["first unknown"] == ["Yabcdefghijk.wav"]
    cache = PredictionStore(cache_path())
    with pytest.raises(StoreMismatchError, match="3 of .* training clips are not cached"):  # distill.missing: error
        cache.check_matches(store, store.indices("train"), "error")
    rows = cache.check_matches(store, store.indices("train"), "gt_only")
    assert (rows < 0).sum() == 3


def test_parquet_and_hdf5_top_k(reference, tmp_path):
    _, params, store, own = reference
    clips = list(own)
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = {"clip_id": clips, **{name: [float(own[c][j]) for c in clips] for j, name in enumerate(store.classes)}}
    pq.write_table(pa.table(table), tmp_path / "teacher.parquet")
    _, got = imported(params, path=str(tmp_path / "teacher.parquet"))
    for c in clips:
        np.testing.assert_array_equal(got[c], own[c])

    h5py = pytest.importorskip("h5py")
    sigmoid = {c: 1 / (1 + np.exp(-own[c])) for c in clips}
    top = {c: np.argsort(-sigmoid[c])[:2] for c in clips}
    with h5py.File(tmp_path / "ced.h5", "w") as f:  # CED's layout: top-k after sigmoid, its indexes, seeds
        f["topk_values"] = np.stack([sigmoid[c][top[c]] for c in clips]).astype(np.float16)
        f["topk_indexes"] = np.stack([top[c] for c in clips]).astype(np.int16)
        f["seeds"] = np.arange(len(clips))
        f["filenames"] = [f"{c}.wav".encode() for c in clips]
    (tmp_path / "classes.txt").write_text("\n".join(store.classes) + "\n")
    _, got = imported(params, path=str(tmp_path / "ced.h5"), outputs="probabilities",
                      classes=str(tmp_path / "classes.txt"))
    for c in clips:
        kept = np.zeros(len(store.classes), bool)
        kept[top[c]] = True
        stored = sigmoid[c][kept].astype(np.float16).astype(np.float64)  # CED stores float16
        np.testing.assert_allclose(got[c][kept], np.log(stored), rtol=1e-5)
        assert (got[c][~kept] == PredictionStore.TOP_K_FILL).all()


@pytest.mark.parametrize("problem, match", [
    ("missing class", "classes are not in the file's class list"),
    ("logits declared as probabilities", "declared probabilities .* are these logits"),
    ("colliding ids", "are the same clip once normalised"),
    ("map of another file", "map to rows outside"),
    ("no class list", "matched by name, not assumed by position"),
])
def test_broken_files_are_refused_naming_the_problem(reference, tmp_path, problem, match):
    _, params, store, own = reference
    clips = list(own)
    values = np.stack([own[c] for c in clips])
    names = list(store.classes)
    ids = {c: i for i, c in enumerate(clips)}
    cfg = {"path": str(tmp_path / "logits.npy"), "index": str(tmp_path / "ids.pkl"),
           "classes": str(tmp_path / "classes.txt")}
    if problem == "missing class":
        names[0] = "a class the dataset does not have"
    elif problem == "logits declared as probabilities":
        cfg["outputs"] = "probabilities"
    elif problem == "colliding ids":
        ids[f"{clips[1]}.flac"] = 0
    elif problem == "map of another file":
        ids[clips[0]] = len(clips) + 5
    elif problem == "no class list":
        del cfg["classes"]
    np.save(tmp_path / "logits.npy", values)
    with open(tmp_path / "ids.pkl", "wb") as f:
        pickle.dump(ids, f)
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    with pytest.raises(ImportProblem, match=match):
        imported(params, **cfg)
    kept = PredictionStore(cache_path())  # the cache already there is left as it was
    np.testing.assert_array_equal(kept.logits[:], values)
