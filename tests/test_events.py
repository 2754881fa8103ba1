"""`cmkd detect` and `cmkd soundscapes`: the streamed timelines (window voting, and the model's own steps) are what
the windows of the whole file give; the level gate keeps silence, room tone and quiet noise free of events and lets
clips through; one sound is one event; thresholds are tuned and detections scored with sed_eval and
sed_scores_eval."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from pipeline.bench.common import random_checkpoint
from pipeline.cli import app
from pipeline.events.segments import Postprocessing, events
from pipeline.events.timeline import Scorer, Timeline
from pipeline.features.audio import load_audio, stream_audio
from pipeline.features.fbank import fbank, pad_or_crop

from .conftest import ESC50

FEATURES = {"sample_rate": 16000, "num_mel_bins": 128, "frame_shift_ms": 10.0, "frame_length_ms": 25.0}


@pytest.fixture
def model(tmp_path):
    classes = ["a", "b", "c", "d"]
    return random_checkpoint("efficientnet_test", tmp_path / "model.pt", classes, 100,
                             normalization={"mean": -6.0, "std": 3.0}, features={**FEATURES, "target_frames": 100})


def noise_file(path, seconds: float, rate: int = 16000, seed: int = 0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate)
    return path


@pytest.mark.parametrize("rate", [16000, 44100])
def test_streamed_audio_is_the_whole_file(tmp_path, rate):
    path = noise_file(tmp_path / "a.wav", 7.3, rate)
    whole = load_audio(path, 16000)
    np.testing.assert_array_equal(torch.cat(list(stream_audio(path, 16000, chunk_seconds=1.0))).numpy(),
                                  whole.numpy())


def test_the_timeline_is_the_mean_of_the_windows_covering_each_step(tmp_path, model):
    path = noise_file(tmp_path / "long.wav", 12.34)
    scorer = Scorer(model, hop=0.3, batch_size=5, chunk_seconds=2.0, method="windows", gate_db=None)  # 30 frames
    # apart, 100-frame windows
    (timeline,) = scorer.timelines([path])
    feats = fbank(load_audio(path, 16000)).half().float()  # the whole file at once
    starts = list(range(0, len(feats) - 100 + 30, 30))
    x = torch.stack([pad_or_crop(feats[s:], 100) for s in starts])
    with torch.no_grad():
        probs = torch.softmax(scorer.model(scorer.normalization(x)), dim=1).numpy()
    assert timeline.windows == len(starts) and len(timeline.scores) == int(np.ceil(12.34 / 0.3))
    expected = []
    for j in range(len(timeline.scores)):
        middle = j * 30 + 15
        covering = [i for i, s in enumerate(starts) if s <= middle < s + 100]
        expected.append(probs[covering].mean(axis=0) if covering else expected[-1])  # past the last frame
    np.testing.assert_allclose(timeline.scores, np.array(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["frames", "windows"])
def test_windows_of_several_files_share_batches_without_mixing_them(tmp_path, model, method):
    paths = [noise_file(tmp_path / f"{i}.wav", seconds, seed=i) for i, seconds in enumerate((0.7, 3.2, 5.9))]
    one = {t.path: t.scores for t in Scorer(model, hop=0.5, batch_size=1, method=method).timelines(paths)}
    many = list(Scorer(model, hop=0.5, batch_size=7, method=method).timelines(paths))
    assert [t.path for t in many] == paths  # in order, a file shorter than the window included
    for t in many:
        np.testing.assert_allclose(t.scores, one[t.path], rtol=1e-5, atol=1e-6)


def test_the_frame_timeline_is_the_tapered_mean_of_the_windows_steps(tmp_path, model):
    path = noise_file(tmp_path / "long.wav", 7.77)
    scorer = Scorer(model, batch_size=3, chunk_seconds=2.0, method="frames", gate_db=None)
    (timeline,) = scorer.timelines([path])
    assert timeline.method == "frames" and scorer.hop == 50  # windows half a window apart
    feats = fbank(load_audio(path, 16000)).half().float()
    starts = list(range(0, len(feats) - 100 + 50, 50))
    x = torch.stack([pad_or_crop(feats[s:], 100) for s in starts])
    with torch.no_grad():
        probs = torch.softmax(scorer.model.frame_logits(scorer.normalization(x)), dim=2).numpy()
    per_window = probs.shape[1]  # the CNN's time steps of a 100-frame window (stride 32: 4)
    step = 100 / per_window
    assert timeline.step == pytest.approx(step * 0.01) and len(timeline.scores) == int(np.ceil(7.77 / (step * .01)))
    taper = np.sin(np.pi * (np.arange(per_window) + 0.5) / per_window)
    sums, weights = np.zeros((len(timeline.scores), 4)), np.zeros(len(timeline.scores))
    for w, s in enumerate(starts):
        first = int(np.floor(s / step + 0.5))
        for j in range(per_window):
            if first + j < len(weights):
                sums[first + j] += probs[w, j] * taper[j]
                weights[first + j] += taper[j]
    np.testing.assert_allclose(timeline.scores, sums / weights[:, None], rtol=1e-5, atol=1e-6)


def test_a_model_without_steps_scores_windows_only(model, monkeypatch):
    from pipeline.events.timeline import NoFrameScores
    from pipeline.models.timm_cnn import TimmCNN

    assert Scorer(model).method == "windows"  # the default
    monkeypatch.delattr(TimmCNN, "frame_logits")  # as a family that does not keep time
    with pytest.raises(NoFrameScores, match="--timeline windows"):
        Scorer(model, method="frames")


def test_one_sound_is_one_event():
    scores = np.zeros((60, 2), dtype=np.float32)
    scores[10:20, 0] = 0.9
    scores[14, 0] = 0.2        # a one-step dip inside the sound: the median filter fills it
    scores[30:33, 0] = 0.8     # a second sound
    scores[34:36, 0] = 0.8     # ... whose continuation after a gap of 1 step (0.5 s) is joined to it
    scores[50, 1] = 0.95       # a one-step flicker: filtered out
    timeline = Timeline(path=None, step=0.5, duration=30.0, scores=scores, windows=60, classes=["dog", "bird"],
                        multi_label=True)
    found = events(timeline, np.array([0.5, 0.5]), Postprocessing(smooth=1.5, min_gap=0.6))
    assert [(e.label, e.onset, e.offset) for e in found] == [("dog", 5.0, 10.0), ("dog", 15.0, 18.0)]
    assert found[0].confidence == pytest.approx(0.9)


def test_a_class_never_found_on_validation_keeps_the_default_threshold():
    pytest.importorskip("sed_eval")
    from pipeline.events.scoring import tune_thresholds

    scores = np.full((40, 2), 0.02, dtype=np.float32)
    scores[10:20, 0] = 0.7     # "dog" sounds at 5-10 s and the model finds it above any threshold up to 0.65
    scores[24:30, 1] = 0.1     # "bird" sounds at 20-25 s but the model's bird scores are elsewhere, and low
    timeline = Timeline(path=None, step=0.5, duration=20.0, scores=scores, windows=40, classes=["dog", "bird"],
                        multi_label=True)
    reference = {"a.wav": [(5.0, 10.0, "dog"), (2.0, 4.0, "bird")]}
    thresholds = tune_thresholds({"a.wav": timeline}, reference, Postprocessing(smooth=0.0), default=0.5)
    assert thresholds["dog"] == pytest.approx(0.05)  # the first of the thresholds that find it (F1 1 up to 0.65)
    assert thresholds["bird"] == 0.5                # F1 0 at every threshold: not the lowest, which fires most


@pytest.mark.skipif(not ESC50.exists(), reason="ESC-50 not present")
def test_detect_tunes_on_validation_soundscapes_and_scores_the_test_ones(tmp_path):
    pytest.importorskip("sed_eval")
    pytest.importorskip("sed_scores_eval")
    from pipeline.events.soundscapes import write_soundscapes

    described = write_soundscapes(ESC50, 1, tmp_path / "scapes", val=1, test=1, seconds=30.0, seed=0)
    assert described["splits"]["test"]["events"] > 0
    classes = sorted(json.loads((tmp_path / "scapes" / "soundscapes.json").read_text())["event classes"]
                     + described["ambient classes"])
    model = random_checkpoint("efficientnet_test", tmp_path / "esc.pt", classes, 512,
                              normalization={"mean": -6.0, "std": 3.0}, features={**FEATURES, "target_frames": 512})
    (tmp_path / "events.txt").write_text("\n".join(described["event classes"]))
    out = tmp_path / "detections"
    result = CliRunner().invoke(app, ["detect", str(model), str(tmp_path / "scapes" / "test"), "--out", str(out),
                                      "--tune", str(tmp_path / "scapes" / "val"), "--tune-annotations",
                                      str(tmp_path / "scapes" / "val.tsv"), "--score",
                                      str(tmp_path / "scapes" / "test.tsv"), "--classes",
                                      str(tmp_path / "events.txt")])
    assert result.exit_code == 0, result.output
    thresholds = json.loads((out / "thresholds.json").read_text())
    assert set(thresholds) == set(classes) and all(0 < v < 1 for v in thresholds.values())
    scores = json.loads((out / "scores.json").read_text())
    assert {"event_f1", "segment_f1", "psds1", "psds2"} <= set(scores) and scores["minutes"] == 0.5
    assert (out / "events.tsv").read_text().startswith("filename\tonset\toffset\tevent_label")
    assert (out / "scape_000.png").exists() and (out / "scape_000.txt").exists()
    table = tmp_path / "more.tsv"  # events of recordings not given are not misses of the ones given
    first_class = described["event classes"][0]
    table.write_text((tmp_path / "scapes" / "test.tsv").read_text() + f"elsewhere.wav\t1.0\t2.0\t{first_class}\n")
    again = CliRunner().invoke(app, ["detect", str(model), str(tmp_path / "scapes" / "test"), "--out",
                                     str(tmp_path / "again"), "--threshold", str(out / "thresholds.json"),
                                     "--score", str(table), "--classes", str(tmp_path / "events.txt")])
    assert again.exit_code == 0, again.output
    rescored = json.loads((tmp_path / "again" / "scores.json").read_text())
    assert set(rescored["file_counts"]) == {"scape_000.wav"}
    assert rescored["file_counts"] == scores["file_counts"] and rescored["psds1"] == scores["psds1"]


def test_a_paired_difference_of_detections_is_resampled_by_recording():
    from pipeline.events.scoring import paired_difference

    a = {f"f{i}": {"Nref": 4, "Nsys": 4, "Ntp": 3} for i in range(30)}   # F1 0.75 on every recording
    b = {f"f{i}": {"Nref": 4, "Nsys": 4, "Ntp": 1} for i in range(30)}   # F1 0.25
    result = paired_difference(a, b, resamples=500)
    assert result["difference"] == pytest.approx(0.5) and result["ci95_low"] == pytest.approx(0.5)
    noisy = {f"f{i}": {"Nref": 4, "Nsys": 4, "Ntp": 4 if i % 2 else 0} for i in range(30)}  # F1 0.5 overall
    steady = {f"f{i}": {"Nref": 4, "Nsys": 4, "Ntp": 2} for i in range(30)}                # F1 0.5 everywhere
    result = paired_difference(noisy, steady, resamples=500)
    assert result["ci95_low"] < 0 < result["ci95_high"] and result["recordings"] == 30


def quiet_files(folder, seconds: float = 20.0, rate: int = 16000) -> list:
    """A file of quiet noise (-60 dB full scale), one of room tone and one of digital silence."""
    from pipeline.events.soundscapes import room_tone

    folder.mkdir(exist_ok=True)
    rng, n = np.random.default_rng(0), int(seconds * rate)
    made = {"quiet_noise.wav": 10 ** (-60 / 20) * rng.standard_normal(n), "room_tone.wav": room_tone(n, rng),
            "digital_silence.wav": np.zeros(n)}
    for name, audio in made.items():
        sf.write(folder / name, audio.astype(np.float32), rate)
    return [folder / name for name in made]


def test_streamed_levels_are_the_whole_files_levels(tmp_path):
    from pipeline.events.activity import Levels

    audio = np.random.default_rng(1).standard_normal(16000 * 3 + 123) * 0.1
    levels = Levels(16000)
    for at in range(0, len(audio), 7777):
        levels.add(audio[at : at + 7777])
    blocks = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    expected = np.r_[10 * np.log10(np.mean(blocks ** 2, axis=1) + 1e-12),
                     10 * np.log10(np.mean(audio[len(blocks) * 320:] ** 2) + 1e-12)]
    np.testing.assert_allclose(levels.db(), expected, rtol=1e-9)


def test_the_gate_opens_on_a_sound_and_nowhere_else():
    from pipeline.events.activity import Levels, step_activity

    rng = np.random.default_rng(2)
    audio = 10 ** (-50 / 20) * rng.standard_normal(16000 * 40)   # 40 s of steady noise
    audio[16000 * 20 : 16000 * 21] += 0.1 * rng.standard_normal(16000)  # a 1 s sound at 20 s, 30 dB over it
    levels = Levels(16000)
    levels.add(audio)
    active = step_activity(levels.db(), 0.5, 80) >= 6.0
    assert np.flatnonzero(active).tolist() == [40, 41]


@pytest.mark.parametrize("method", ["frames", "windows"])
def test_silence_room_tone_and_quiet_noise_give_no_events(tmp_path, model, method):
    files = quiet_files(tmp_path / "quiet")
    args = ["detect", str(model), str(tmp_path / "quiet"), "--timeline", method, "--threshold", "0.2"]
    gated = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "gated")])  # below chance for 4 classes: any
    assert gated.exit_code == 0, gated.output                                   # step the gate lets by would fire
    assert "\n0 events in 3 files" in gated.output
    ungated = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "ungated"), "--gate", "off"])
    assert ungated.exit_code == 0, ungated.output
    found = json.loads((tmp_path / "ungated" / "events.json").read_text())
    assert all(found[str(f)]["events"] for f in files)  # without the gate every file has its "events"
    loud = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "bad"), "--gate", "loud"])
    assert loud.exit_code == 2 and "--gate" in loud.output and "'loud'" in loud.output


def test_clips_between_quiet_gaps_are_found_and_the_gaps_stay_quiet(with_teacher, tmp_path):
    """The built-in test clips (1 s each) 4 s apart in quiet noise, the trained CNN over them: each clip is an event
    and nothing is found in the gaps."""
    from .conftest import path as checkpoint_path

    workspace, _ = with_teacher
    raw = workspace / "data" / "raw"
    rows = [r.split(",") for r in (raw / "manifest.csv").read_text().splitlines()[1:]]
    clips = [load_audio(raw / r[1], 16000).numpy() for r in rows if r[3] == "test"][:10]
    rng, gap = np.random.default_rng(3), 4 * 16000
    level = np.sqrt(np.mean(np.concatenate(clips) ** 2)) * 10 ** (-30 / 20)
    parts, spans, at = [], [], gap
    parts.append(level * rng.standard_normal(gap))
    for clip in clips:
        spans.append((at / 16000, (at + len(clip)) / 16000))
        parts += [clip, level * rng.standard_normal(gap)]
        at += len(clip) + gap
    sf.write(tmp_path / "rec.wav", np.concatenate(parts).astype(np.float32), 16000)
    out = tmp_path / "det"
    result = CliRunner().invoke(app, ["detect", str(workspace / checkpoint_path("teacher")), str(tmp_path / "rec.wav"),
                                      "--out", str(out), "--threshold", "0.2"])  # below chance: the gate decides
    assert result.exit_code == 0, result.output
    (found,) = json.loads((out / "events.json").read_text()).values()
    step = found["hop"]
    for e in found["events"]:  # every event on a clip (to a step and the smoothing's half width)
        assert any(a - 2 * step <= e["onset"] and e["offset"] <= b + 2 * step for a, b in spans), e
    for a, b in spans:
        assert any(e["onset"] < b and e["offset"] > a for e in found["events"]), (a, b)


def test_alarms_in_quiet_stretches_and_onset_errors_are_counted():
    from pipeline.events.scoring import onset_error, quiet_alarms
    from pipeline.events.segments import Event

    found = {"a.wav": [Event("dog", 0.0, 5.5, 1.0), Event("dog", 7.0, 8.0, 1.0), Event("cat", 20.4, 22.0, 0.9)]}
    quiet = {"a.wav": [(5.0, 15.0, "quiet")]}  # 8 s once 1 s is left off at both ends: the first event is its fade
    assert quiet_alarms(found, quiet) == {"quiet_minutes": 0.133, "quiet_events": 1,
                                          "quiet_alarms_per_minute": pytest.approx(7.5)}
    reference = {"a.wav": [(20.0, 21.0, "cat"), (30.0, 31.0, "cat"), (7.5, 9.0, "bird")]}
    errors = onset_error(found, reference, ["cat", "bird"])
    assert errors["onset_error_events"] == 1 and errors["onset_error_median"] == pytest.approx(0.4)
