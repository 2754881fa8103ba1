"""`cmkd scale` lays out AudioSet's shape in the AST recipe's format: its class index, the label sets of its real
clips, 10 s of audio made for each; the pipeline's AudioSet reader takes it as a user's AudioSet would be taken."""
import json

import numpy as np
import pytest
import soundfile as sf

from pipeline import layout
from pipeline.manifest import read_classes, read_manifest
from pipeline.prepare import prepare
from pipeline.scale import label_sets, lay_out, markdown_table, params

from .conftest import REPO, settings

META = REPO.parent / "shared" / "datasets" / "audioset-meta"


@pytest.mark.skipif(not META.exists(), reason="AudioSet's metadata not present")
def test_an_audioset_shaped_dataset_is_read_by_the_audioset_source(tmp_path, monkeypatch):
    files = lay_out(tmp_path / "dataset", META, clips=20, seed=0, workers=1)
    entries = json.loads(files["train"].read_text())["data"]
    assert len(entries) == 14 and len(json.loads(files["test"].read_text())["data"]) == 6
    assert [e["labels"] for e in entries] == [",".join(m) for _, m in label_sets(META, "train", 14)]
    audio, rate = sf.read(tmp_path / "dataset" / entries[0]["wav"])
    assert rate == 16000 and len(audio) == 160000 and np.abs(audio).max() > 0
    monkeypatch.chdir(tmp_path)
    p = params(files, META, epochs=1, resident=False)
    assert p["features"]["target_frames"] == 1024 and p["train"]["resident"] is False
    prepare(settings(p))
    classes = read_classes(layout.CLASSES)
    clips = read_manifest(layout.MANIFEST, classes, multi_label=True)
    assert len(classes) == 527 and len(clips) == 20 and {c.split for c in clips} <= {"train", "val", "test"}
    assert sum(c.split == "test" for c in clips) == 6


def test_the_table_gives_each_size_and_the_per_clip_time_of_the_largest_over_the_smallest():
    def report(clips, seconds):
        return {"clips": clips, "rows": [
            {"step": "features", "seconds": seconds, "peak_rss_mb": 1100, "disk_bytes_per_clip": 211894},
            {"step": "model_code@ast", "seconds": 1.0, "peak_rss_mb": 55},
            {"step": "model_code@cnn", "seconds": 1.0, "peak_rss_mb": 55},
            {"step": "train@cnn-main-0", "seconds": seconds * 3, "peak_rss_mb": 2300, "disk_bytes_per_clip": 99,
             "store path": "loader (1 workers reading Zarr)"}]}

    lines = markdown_table([report(30000, 750.0), report(1000, 20.0)]).splitlines()
    assert lines[0] == "| step | 1,000 clips | 30,000 clips | per clip, 30,000 / 1,000 |"
    assert lines[2] == "| features | 20 s, 1,100 MB, 211,894 B/clip | 750 s, 1,100 MB, 211,894 B/clip | 1.25 |"
    assert lines[3].startswith("| model_code (each of 6) | 1 s, 55 MB |") and len(lines) == 5
    assert lines[4].endswith("60 s, 2,300 MB, 99 B/clip, loader | 2250 s, 2,300 MB, 99 B/clip, loader | 1.25 |")
