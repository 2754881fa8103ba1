import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.features.audio import AudioError, load_audio
from pipeline.features.fbank import fbank, pad_or_crop
from pipeline.manifest import ManifestError, read_classes, read_manifest, write_manifest
from pipeline.stores.features import FeatureStore

from .conftest import ESC50


def test_fbank_is_the_ast_recipe():
    from .kaldi_reference import reference, synthetic_waves

    wave = synthetic_waves()[0]  # 1 s of noise with a DC offset
    got = fbank(wave)
    assert got.shape == (98, 128)  # 1 + (16000 - 400) // 160 frames of 25 ms every 10 ms
    torch.testing.assert_close(got[:40], torch.from_numpy(reference()["fbank0"]), atol=1e-3, rtol=0)


def test_pad_or_crop():
    feats = torch.ones(98, 128)
    padded = pad_or_crop(feats, 100)
    assert padded.shape == (100, 128) and padded[98:].abs().sum() == 0 and padded[:98].eq(1).all()
    assert pad_or_crop(feats, 50).shape == (50, 128)


@pytest.mark.skipif(not ESC50.exists(), reason="ESC-50 not present")
def test_fbank_on_a_real_esc50_clip():
    clip = sorted((ESC50 / "audio").glob("*.flac"))[0]
    feats = fbank(load_audio(clip, 16000))
    assert feats.shape == (498, 128)  # 5 s at 16 kHz
    assert torch.isfinite(feats).all()


def test_load_audio_resamples_and_downmixes(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32) * 0.5
    sf.write(tmp_path / "a.wav", stereo, 44100)
    wave = load_audio(tmp_path / "a.wav", 16000)
    assert wave.shape == (16000,)
    assert abs(wave.abs().max().item() - 0.25) < 0.01  # mean of the two channels


def test_load_audio_names_the_bad_file(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"this is not audio")
    with pytest.raises(AudioError, match="bad.wav: cannot decode"):
        load_audio(tmp_path / "bad.wav", 16000)
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(tmp_path / "missing.wav", 16000)


def test_manifest_rejects_unknown_label(tmp_path):
    write_manifest(tmp_path / "manifest.csv", [{"clip_id": "a", "path": "a.wav", "labels": ["dog"], "split": "train"}],
                   classes=["cat"])
    with pytest.raises(ManifestError, match=r"manifest.csv:2 \(a.wav\): labels \['dog'\] are not in the class list"):
        read_manifest(tmp_path / "manifest.csv", read_classes(tmp_path / "classes.txt"))


def test_feature_store_round_trip(tiny_workspace):
    root, params = tiny_workspace
    store = FeatureStore(root / "data/features.zarr")
    clips = read_manifest(root / "data/raw/manifest.csv", read_classes(root / "data/raw/classes.txt"))
    assert list(store.clip_ids) == [c.clip_id for c in clips]
    assert store.classes == read_classes(root / "data/raw/classes.txt")
    for row in (0, len(clips) - 1):
        expected = pad_or_crop(fbank(load_audio(clips[row].path, 16000)), 100).numpy().astype(np.float16)
        np.testing.assert_array_equal(store.features[row], expected)
        assert [store.classes[i] for i in np.flatnonzero(store.labels[row])] == list(clips[row].labels)
    assert list(store.split) == [c.split for c in clips]
    assert store.features.dtype == np.float16 and store.features.shards == (16, 100, 128)

    train = store.features.oindex[store.indices("train")].astype(np.float64)
    assert store.normalization.mean == pytest.approx(train.mean(), rel=1e-6)
    assert store.normalization.std == pytest.approx(train.std(), rel=1e-6)
    everything = store.features[:].astype(np.float64)
    assert store.normalization.mean != pytest.approx(everything.mean(), rel=1e-6)  # train only
