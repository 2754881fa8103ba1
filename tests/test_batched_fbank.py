"""The fbank cmkd computes reproduces the Kaldi fbank the field's checkpoints were trained on: torchaudio's, where
torchaudio is installed, else the values it gave (tests/kaldi_reference.py, stored with the tests).

The mel banks are torchaudio's to within a float32 step (its float32 log is MKL's, whose last bit follows the
CPU; ours is the same on every CPU). The spectra are computed in float64 for the store (float32 in an exported
graph); torchaudio computes in float32, so the two differ by float32's rounding: ~1e-5 of a value, more where a mel
energy is small (log below -10; Kaldi's floor is float32 epsilon, log -15.9), where float32 itself is up to ~2e-3
from a float64 computation on these clips. Values that small are held to 5e-3, every other to 1e-3; after the
store's float16 rounding at least 99 % are identical. In float64 the stored values do not depend on the thread
count or on the code path MKL picks for the CPU.
"""
import numpy as np
import pytest
import torch

from pipeline import layout
from pipeline.features.audio import load_audio
from pipeline.features.extract import clip_features, default_frontend, write_feature_store
from pipeline.features.fbank import BatchedFbank, fbank, mel_banks, pad_batch, pad_or_crop
from pipeline.stores.features import FeatureStore

from .conftest import ESC50, settings
from .kaldi_reference import FRAMES, MEL_SETTINGS, reference, synthetic_waves

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NEAR_FLOOR = -10.0  # log mel energy below which float32's rounding reaches 1e-3
REFERENCE = reference()


def assert_matches(got: torch.Tensor, expected: torch.Tensor) -> None:
    got, expected = got.cpu().float(), torch.as_tensor(expected).float()
    diff = (got - expected).abs()
    near_floor = expected < NEAR_FLOOR
    assert diff[~near_floor].max() <= 1e-3 if (~near_floor).any() else True
    assert diff[near_floor].max() <= 5e-3 if near_floor.any() else True


@pytest.mark.parametrize("bins,n_fft,rate", MEL_SETTINGS)
def test_mel_banks_are_kaldis(bins, n_fft, rate):
    """torchaudio's float32 log is MKL's, whose last bit depends on the CPU's code path; ours is the C library's,
    rounded to float32: the weights agree to within a float32 step of the mel scale over a bin's width."""
    ours, theirs = mel_banks(bins, n_fft, rate).numpy(), REFERENCE[f"mel{bins}_{n_fft}_{int(rate)}"]
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=5e-5)
    assert np.array_equal(ours > 0, theirs > 0)


CPU_PATH_PROBE = """
import hashlib, torch
from pipeline.features.fbank import BatchedFbank, fbank, mel_banks
from tests.kaldi_reference import MEL_SETTINGS, synthetic_waves
h = hashlib.sha256()
for setting in MEL_SETTINGS:
    h.update(mel_banks(*setting).numpy().tobytes())
h.update(BatchedFbank(window="povey", dtype=torch.float64).window.numpy().tobytes())
for wave in synthetic_waves():
    h.update(fbank(wave).half().numpy().tobytes())
print(h.hexdigest())
"""


def test_float64_features_do_not_depend_on_mkls_code_path():
    """MKL picks its kernels by CPU (MKL_CBWR forces one): the stored values must not follow it. They did, through
    the mel banks' float32 log, until those were computed by the C library."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    digests = {subprocess.run([sys.executable, "-c", CPU_PATH_PROBE], capture_output=True, text=True, check=True,
                              cwd=root, env={**os.environ, "MKL_CBWR": path}).stdout for path in ("AUTO", "COMPATIBLE")}
    assert len(digests) == 1, digests


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_kaldi_on_synthetic_clips(device, dtype):
    waves = synthetic_waves()
    batch, lengths = pad_batch(waves)
    got, frames = BatchedFbank(dtype=dtype).to(device)(batch.to(device), lengths, FRAMES)
    assert got.shape == (len(waves), FRAMES, 128) and got.dtype == dtype
    assert frames.tolist() == REFERENCE["frames"].tolist()
    for i, wave in enumerate(waves):
        kept = min(FRAMES, int(frames[i]))
        assert_matches(got[i, :kept], REFERENCE[f"fbank{i}"][:kept])
        assert_matches(pad_or_crop(fbank(wave, dtype=dtype), FRAMES)[:kept], REFERENCE[f"fbank{i}"][:kept])


def test_the_stored_float16_values_are_kaldis():
    same = total = 0
    for i, wave in enumerate(synthetic_waves()):
        ours = fbank(wave)[:FRAMES].half().numpy()
        theirs = REFERENCE[f"fbank{i}"].astype(np.float16)
        same, total = same + int((ours == theirs).sum()), total + ours.size
    assert same / total >= 0.99, same / total


def test_float64_features_do_not_depend_on_the_thread_count():
    waves = synthetic_waves()
    threads = torch.get_num_threads()
    try:
        stored = []
        for count in (1, 2):
            torch.set_num_threads(count)
            stored.append([fbank(w).half().numpy() for w in waves])
    finally:
        torch.set_num_threads(threads)
    assert all(np.array_equal(a, b) for a, b in zip(*stored))


@pytest.mark.skipif(not ESC50.exists(), reason="ESC-50 not present")
@pytest.mark.parametrize("device", DEVICES)
def test_matches_kaldi_on_real_esc50_clips(device):
    torchaudio = pytest.importorskip("torchaudio")  # live: the stored reference holds synthetic clips only
    files = sorted((ESC50 / "audio").glob("*.flac"))[::125]  # 16 clips spread over the classes
    waves = [load_audio(f, 16000) for f in files]
    got, frames = BatchedFbank(dtype=torch.float64).to(device)(*[t.to(device) for t in pad_batch(waves)], 512)
    assert frames.tolist() == [498] * len(files)
    for i, wave in enumerate(waves):
        expected = torchaudio.compliance.kaldi.fbank(
            (wave - wave.mean()).unsqueeze(0), htk_compat=True, sample_frequency=16000, use_energy=False,
            window_type="hanning", num_mel_bins=128, dither=0.0)
        assert_matches(got[i, :498], expected)


def test_without_target_frames_keeps_the_longest_clip():
    waves = synthetic_waves()
    got, frames = BatchedFbank()(*pad_batch(waves))
    assert got.shape[1] == int(frames.max())
    assert got[4, 1:].abs().sum() == 0  # frames past a clip's end are zero, as pad_or_crop makes them


def test_the_store_in_each_precision(in_workspace, tmp_path):
    """float32 and float64 stores agree to float16 precision, record how they were made and are told apart by
    their fingerprints; each row is clip_features' of its clip."""
    root, params = in_workspace
    params["features"]["precision"] = "float32"
    cfg = settings(params).features
    write_feature_store(layout.MANIFEST, layout.CLASSES, tmp_path / "f32.zarr", cfg, params["data"]["multi_label"])
    f32, f64 = FeatureStore(tmp_path / "f32.zarr"), FeatureStore(layout.FEATURES)
    assert f32.group.attrs["fbank"] == "pipeline.features.fbank.BatchedFbank (float32) on cpu"
    assert f64.group.attrs["fbank"] == "pipeline.features.fbank.BatchedFbank (float64) on cpu"
    diff = np.abs(f32.features[:].astype(np.float32) - f64.features[:].astype(np.float32)).max()
    assert diff <= 1e-2  # float16 storage: values of ~10 are stored to 2^-7
    np.testing.assert_array_equal(f32.group["num_frames"][:], f64.group["num_frames"][:])
    assert f32.fingerprint != f64.fingerprint
    from pipeline.manifest import read_classes, read_manifest

    clip = read_manifest(layout.MANIFEST, read_classes(layout.CLASSES))[0]
    cfg = settings(params | {"features": {**params["features"], "precision": "float64"}}).features
    expected, _ = clip_features(load_audio(clip.path, 16000), default_frontend(cfg), cfg.target_frames)
    np.testing.assert_array_equal(f64.features[0], expected)
