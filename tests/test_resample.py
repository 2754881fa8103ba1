"""Every sample rate a recorder writes, resampled by the SoX resampler (soxr) in memory that does not depend on the
ratio: checked against torchaudio's resampler in the band both keep, and at the rates that share no factor with
16 kHz, which once built a polyphase filter of 16,000 phases (2 GB) per clip."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.features.audio import load_audio, resample, stream_audio

ODD_RATES = (16393, 22257, 22254, 21276, 11127, 8012)


def tones(rate: int, seconds: float, top: float, seed: int = 0) -> np.ndarray:
    """Eight tones below `top` Hz at `rate`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    return (sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(50, top, 8), rng.uniform(0, 6, 8)))
            / 8).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_matches_torchaudio_in_the_band_both_keep(rate):
    """torchaudio's Hann-windowed sinc (its defaults) rolls off earlier than soxr's HQ filter: below 60 % of the
    lower Nyquist both pass the signal, and there they agree to 0.2 % (rms)."""
    torchaudio = pytest.importorskip("torchaudio")
    x = tones(rate, 1.0, 0.3 * min(rate, 16000))
    ours = resample(torch.from_numpy(x), rate, 16000).numpy()
    theirs = torchaudio.functional.resample(torch.from_numpy(x), rate, 16000).numpy()
    assert ours.shape == theirs.shape == (16000,)
    core = slice(200, -200)  # the two filters treat the clip's edges differently
    assert np.sqrt(np.mean((ours[core] - theirs[core]) ** 2)) / np.sqrt(np.mean(theirs[core] ** 2)) < 2e-3


@pytest.mark.parametrize("rate", ODD_RATES)
def test_any_rate_keeps_a_tone_where_it_was(rate):
    t = np.arange(rate) / rate
    x = torch.from_numpy(np.sin(2 * np.pi * 1000.0 * t).astype(np.float32))
    y = resample(x, rate, 16000).numpy()
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spectrum) - 1000) <= 1  # 1 Hz bins
    assert np.sqrt(np.mean(y[500:-500] ** 2)) == pytest.approx(np.sqrt(0.5), rel=1e-3)


def test_streamed_equals_whole(tmp_path):
    path = tmp_path / "odd.wav"
    sf.write(path, tones(16393, 7.3, 6000), 16393)
    whole = load_audio(path, 16000).numpy()
    streamed = np.concatenate([c.numpy() for c in stream_audio(path, 16000, chunk_seconds=1.0)])
    np.testing.assert_array_equal(streamed, whole)


def test_an_odd_rate_costs_what_an_even_one_does(tmp_path):
    """The peak memory of decoding and resampling a 5 s clip at 16393 Hz (no factor shared with 16 kHz), in its own
    process, is that of one at 44100 Hz (it was 11 GB before soxr, `docs/measurements.md`)."""
    peaks = {}
    for rate in (44100, 16393):
        path = tmp_path / f"clip_{rate}.wav"
        sf.write(path, tones(rate, 5.0, 6000), rate)
        code = ("import resource, sys; from pipeline.features.audio import load_audio; "
                "load_audio(sys.argv[1], 16000); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        peaks[rate] = int(subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                                         check=True).stdout)  # kB
    assert peaks[16393] < peaks[44100] + 50_000, peaks  # within 50 MB of each other
