"""The report over runs and seeds: per direction mean ± std, paired differences with bootstrap intervals over the test
clips (and the runs), said in words; both directions side by side; the plot data and the figures."""
import csv
import json

import numpy as np
import pytest

from pipeline import layout
from pipeline.evaluation import held_out
from pipeline.evaluation.evaluate import evaluate
from pipeline.evaluation.report import write_report
from pipeline.evaluation.statistics import Paired, difference, verdict
from pipeline.runs import Run
from pipeline.task import MultiLabel, SingleLabel

from .conftest import settings

ROLES = ("teacher", "baseline", "student")


@pytest.fixture
def repo_params(repo_params) -> dict:
    """The repository's params with one seed and the forward direction: each test names the runs it writes."""
    return {**repo_params, "seeds": [0], "directions": ["forward"]}


def one_hot(classes: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n)[classes]


def predictions_with(correct: np.ndarray, truth: np.ndarray, n: int) -> np.ndarray:
    """Logits that are right exactly where `correct` says (wrong: the next class)."""
    guess = np.where(correct, truth, (truth + 1) % n)
    return one_hot(guess, n) * 5.0


def write_model(name: str, run: Run, logits: np.ndarray, labels: np.ndarray, architecture: str) -> None:
    """What a training stage keeps of one model of one run (its held-out logits, the test clips standing in for the
    validation clips too), stage evaluate's metrics of them, and a validation curve."""
    classes = [f"c{i}" for i in range(labels.shape[1])]
    clips = held_out.Clips(np.array([f"clip{i}" for i in range(len(labels))]), logits, labels)
    about = {"model": f"{architecture}_model", "architecture": architecture, "distill": None}
    held_out.write(layout.held_out_logits(name, run), held_out.HeldOut(classes, False, about, test=clips, val=clips))
    metrics = evaluate(name, run)
    curve = layout.live_dir(name, run) / "plots" / "metrics" / "val" / "accuracy.tsv"
    curve.parent.mkdir(parents=True, exist_ok=True)
    curve.write_text("step\taccuracy\n1\t0.1\n2\t" + str(metrics["accuracy"]) + "\n")


def write_runs(correct: dict, n_classes: int = 4, directions=("forward",)) -> None:
    """correct: (split, seed) -> (cnn correct, ast correct, forward student correct[, reverse student correct])."""
    for (split, seed), masks in correct.items():
        run = Run(split, seed)
        truth = np.arange(len(masks[0])) % n_classes
        labels = one_hot(truth, n_classes)
        names = ["cnn", "ast", "forward/student", "reverse/student"]
        archs = ["cnn", "ast", "ast", "cnn"]
        for name, arch, mask in zip(names, archs, masks):
            write_model(name, run, predictions_with(mask, truth, n_classes), labels, arch)


def clips(n: int, right: int) -> np.ndarray:
    return np.arange(n) < right


def test_report_gives_spread_paired_differences_plots_and_figures(tmp_path, monkeypatch, repo_params):
    monkeypatch.chdir(tmp_path)
    runs = {("fold1", 0): (clips(100, 60), clips(100, 50), clips(100, 56)),
            ("fold1", 1): (clips(100, 62), clips(100, 52), clips(100, 57)),
            ("fold2", 0): (clips(100, 58), clips(100, 47), clips(100, 52)),
            ("fold2", 1): (clips(100, 61), clips(100, 49), clips(100, 55))}
    write_runs(runs)
    repo_params.update(runs=["fold1", "fold2"], seeds=[0, 1])
    text = write_report(settings(repo_params))
    summary = json.loads(layout.REPORT_JSON.read_text())["forward"]
    student = np.array([m[2].mean() for m in runs.values()])
    baseline = np.array([m[1].mean() for m in runs.values()])
    assert summary["mean"]["student"]["accuracy"] == pytest.approx(student.mean())
    assert summary["std"]["student"]["accuracy"] == pytest.approx(student.std(ddof=1))
    gain = summary["student_minus_baseline"]
    assert gain["runs"] == 4 and gain["clips"] == 400 and gain["mean"] == pytest.approx((student - baseline).mean())
    assert gain["over"] == "test clips and runs" and gain["ci95_low"] < gain["mean"] < gain["ci95_high"]
    assert "| fold2 | 1 | 100 | 0.6100 | 0.4900 | 0.5500 |" in text
    assert "beyond the noise: the 95 % interval excludes 0" in text.split("Student minus teacher")[0]
    assert summary["student_minus_teacher"]["ci95_high"] < 0  # the student stays below its teacher here

    with open(layout.PLOTS / "forward" / "validation" / "student.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[1]["value"]) == pytest.approx(student.mean(), abs=1e-4)
    with open(layout.PLOTS / "forward" / "confusion.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4 * 100  # one row per test clip of every run and seed
    for figure in ("forward-roles.png", "forward-validation.png", "forward-confusion.png"):
        assert (layout.FIGURES / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{figure}" in text


def test_both_directions_side_by_side(tmp_path, monkeypatch, repo_params):
    monkeypatch.chdir(tmp_path)
    write_runs({("main", 0): (clips(80, 40), clips(80, 30), clips(80, 45), clips(80, 50))})
    repo_params.update(directions=["forward", "reverse"])
    text = write_report(settings(repo_params))
    summary = json.loads(layout.REPORT_JSON.read_text())
    # each label-trained model appears twice: the teacher of one direction, the baseline of the other
    assert summary["forward"]["mean"]["teacher"] == summary["reverse"]["mean"]["baseline"] == {"accuracy": 0.5}
    assert summary["reverse"]["mean"]["teacher"] == summary["forward"]["mean"]["baseline"] == {"accuracy": 0.375}
    assert summary["reverse"]["mean"]["student"] == {"accuracy": 0.625}
    assert "| cnn -> ast | 0.5000 | 0.3750 | 0.5625 |" in text and "| ast -> cnn | 0.3750 | 0.5000 | 0.6250 |" in text
    assert "## forward: cnn (cnn_model) -> ast (ast_model)" in text and "## reverse: ast (ast_model) -> cnn" in text
    assert (layout.FIGURES / "reverse-roles.png").exists()


def test_one_clip_better_out_of_80_in_two_runs_is_within_the_noise():
    """The case a t-interval over runs called beyond the noise: two runs with the same +1 clip difference give
    it zero width. Resampled by clip, one clip in 80 is nowhere near a difference."""
    truth = np.arange(80) % 4
    labels = one_hot(truth, 4)
    baseline = clips(80, 59)
    student = baseline.copy()
    student[[0, 1, 2, 3]], student[[70, 71, 72, 73, 74]] = False, True  # 4 clips lost, 5 gained: 60 vs 59 right
    pair = Paired(predictions_with(student, truth, 4), predictions_with(baseline, truth, 4), labels)
    diff = difference([pair, pair], SingleLabel())
    assert diff["mean"] == pytest.approx(1 / 80)
    assert diff["ci95_low"] < 0 < diff["ci95_high"] and diff["over"] == "test clips"
    assert "within the noise" in verdict("Student minus baseline", diff, "accuracy")
    # even a student that is right on one more clip and wrong on none is not called better: 0 stays in the interval
    dominant = Paired(predictions_with(clips(80, 60), truth, 4), predictions_with(clips(80, 59), truth, 4), labels)
    diff = difference([dominant, dominant], SingleLabel())
    assert diff["ci95_low"] == 0 and "within the noise" in verdict("Student minus baseline", diff, "accuracy")


def test_twenty_clips_better_in_each_of_five_runs_is_beyond_the_noise():
    truth = np.arange(80) % 4
    labels = one_hot(truth, 4)
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(5):
        baseline = rng.random(80) < 0.5
        student = baseline.copy()
        student[np.flatnonzero(~baseline)[:20]] = True  # 20 more clips right, none lost
        pairs.append(Paired(predictions_with(student, truth, 4), predictions_with(baseline, truth, 4), labels))
    diff = difference(pairs, SingleLabel())
    assert diff["mean"] == pytest.approx(20 / 80) and diff["over"] == "test clips and runs"
    assert diff["ci95_low"] > 0.1


def test_multi_label_map_is_resampled_by_clip():
    rng = np.random.default_rng(0)
    labels = (rng.random((60, 5)) < 0.3).astype(float)
    labels[0] = 1  # every class has a positive
    good = labels * 2 + rng.normal(0, 1, labels.shape)
    noise = rng.normal(0, 1, labels.shape)
    task = MultiLabel()
    diff = difference([Paired(good, noise, labels)], task, resamples=100)
    assert diff["mean"] == pytest.approx(task.score(good, labels) - task.score(noise, labels))
    assert 0 < diff["ci95_low"] < diff["mean"] < diff["ci95_high"]
    same = difference([Paired(noise, noise, labels)], task, resamples=50)  # identical models: exactly no difference
    assert same["ci95_low"] == same["ci95_high"] == 0


def test_a_difference_within_the_noise_is_called_so(tmp_path, monkeypatch, repo_params):
    monkeypatch.chdir(tmp_path)
    write_runs({("main", 0): (clips(40, 24), clips(40, 20), clips(40, 21)),
                ("main", 1): (clips(40, 24), clips(40, 21), clips(40, 20)),
                ("main", 2): (clips(40, 24), clips(40, 20), clips(40, 21))})
    repo_params.update(seeds=[0, 1, 2])
    text = write_report(settings(repo_params))
    assert "within the noise: the 95 % interval includes 0" in text
    repo_params.update(seeds=[0])
    one = write_report(settings(repo_params))
    assert "With 1 run the interval holds the test clips' sampling noise only" in one


@pytest.mark.parametrize("task", [SingleLabel(), MultiLabel()])
def test_a_weighted_draw_scores_what_the_resampled_clips_score(task):
    """The bootstrap weights the clips instead of copying them: clip i drawn k times counts k times."""
    rng = np.random.default_rng(3)
    labels = one_hot(rng.integers(0, 6, 90), 6) if not task.multi_label else (rng.random((90, 6)) < 0.2) * 1.0
    logits = np.round(rng.normal(0, 1, labels.shape) + labels, 1)  # ties too
    rows = rng.integers(90, size=(5, 90))
    weights = np.stack([np.bincount(r, minlength=90) for r in rows]).astype(float)
    expected = [task.score(logits[r], labels[r]) for r in rows]
    np.testing.assert_allclose(task.scores(logits, labels, weights), expected, rtol=1e-12)


def test_map_intervals_hold_the_observed_value_on_a_small_set_with_rare_classes():
    """162 clips, 83 classes, most with one to three positives (a real bird set's shape): the percentile interval
    of a model's mAP over resampled clips missed its own mAP there; the bias-corrected one holds it."""
    from pipeline.evaluation.statistics import interval_of

    rng = np.random.default_rng(0)
    labels = np.zeros((162, 83))
    for c in range(83):
        labels[rng.choice(162, size=1 + c % 3, replace=False), c] = 1
    task = MultiLabel()
    for strength in (0.5, 2.0, 6.0):
        a = labels * strength + rng.normal(0, 1, labels.shape)
        b = labels * strength / 2 + rng.normal(0, 1, labels.shape)
        low, high = interval_of(a, labels, task)
        assert low <= task.score(a, labels) <= high
        diff = difference([Paired(a, b, labels)], task, resamples=300)
        assert diff["ci95_low"] <= diff["mean"] <= diff["ci95_high"]


def test_a_figure_that_cannot_be_drawn_is_named_and_the_report_is_still_written(tmp_path, monkeypatch, repo_params):
    from pipeline.evaluation import figures

    monkeypatch.chdir(tmp_path)
    write_runs({("main", 0): (clips(40, 30), clips(40, 20), clips(40, 25))})

    def broken(r):
        raise ValueError("'yerr' must not contain negative values")
    monkeypatch.setattr(figures, "roles_figure", broken)
    text = write_report(settings(repo_params))
    assert "## Figures not drawn" in text and "roles figure not drawn (ValueError: 'yerr'" in text
    assert layout.REPORT.read_text() == text and (layout.FIGURES / "forward-validation.png").exists()
