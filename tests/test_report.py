"""The report over runs and seeds: mean ± std, paired differences with a 95 % interval, said in words; the plot data."""
import csv
import json

import numpy as np
import pytest
from scipy import stats

from pipeline import layout
from pipeline.evaluation.report import write_report
from pipeline.runs import Run

from .conftest import settings

ACCURACY = {  # (split, seed) -> teacher, baseline, student
    ("fold1", 0): (0.60, 0.50, 0.56), ("fold1", 1): (0.62, 0.52, 0.57),
    ("fold2", 0): (0.58, 0.47, 0.52), ("fold2", 1): (0.61, 0.49, 0.55),
}


def write_results(accuracy: dict) -> None:
    for (split, seed), values in accuracy.items():
        run = Run(split, seed)
        for role, value in zip(("teacher", "baseline", "student"), values):
            layout.results_dir(role, run).mkdir(parents=True, exist_ok=True)
            layout.metrics(role, run).write_text(json.dumps({
                "accuracy": value, "clips": 400, "run": split, "seed": seed, "model": f"{role}_model",
                "architecture": "cnn" if role == "teacher" else "ast"}))
            layout.per_class(role, run).write_text(json.dumps({
                "classes": ["dog", "rain"], "accuracy": {"dog": value, "rain": None if role == "baseline" else 0.5},
                "confusion": [[2, 1], [0, 3]], "unscored": []}))
            curve = layout.live_dir(role, run) / "plots" / "metrics" / "val" / "accuracy.tsv"
            curve.parent.mkdir(parents=True, exist_ok=True)
            curve.write_text("step\taccuracy\n1\t0.1\n2\t" + str(value) + "\n")


def test_report_gives_spread_and_paired_differences(tmp_path, monkeypatch, repo_params):
    monkeypatch.chdir(tmp_path)
    write_results(ACCURACY)
    repo_params.update(runs=["fold1", "fold2"], seeds=[0, 1])
    text = write_report(settings(repo_params))
    summary = json.loads(layout.REPORT_JSON.read_text())
    values = np.array(list(ACCURACY.values()))
    assert summary["mean"]["student"]["accuracy"] == pytest.approx(values[:, 2].mean())
    assert summary["std"]["student"]["accuracy"] == pytest.approx(values[:, 2].std(ddof=1))
    diff = values[:, 2] - values[:, 1]
    half = stats.t.ppf(0.975, 3) * diff.std(ddof=1) / 2
    gain = summary["student_minus_baseline"]
    assert gain["pairs"] == 4 and gain["mean"] == pytest.approx(diff.mean())
    assert (gain["ci95_low"], gain["ci95_high"]) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert "| fold2 | 1 | 400 | 0.6100 | 0.4900 | 0.5500 |" in text
    assert "beyond the noise: the 95 % interval excludes 0" in text.split("Student minus teacher")[0]
    assert summary["student_minus_teacher"]["ci95_high"] < 0  # the student stays below its teacher here

    with open(layout.PLOTS / "validation" / "student.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[1]["value"]) == pytest.approx(values[:, 2].mean(), abs=1e-4)
    with open(layout.PLOTS / "confusion.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4 * 6  # one row per test clip of every run and seed
    with open(layout.PLOTS / "per_class" / "baseline.csv", newline="") as f:
        assert [r["class"] for r in csv.DictReader(f)] == ["dog"]  # rain was never scored for the baseline


def test_a_difference_within_the_noise_is_called_so(tmp_path, monkeypatch, repo_params):
    monkeypatch.chdir(tmp_path)
    write_results({("main", 0): (0.6, 0.50, 0.53), ("main", 1): (0.6, 0.52, 0.49), ("main", 2): (0.6, 0.5, 0.52)})
    repo_params.update(seeds=[0, 1, 2])
    text = write_report(settings(repo_params))
    assert "within the noise: the 95 % interval includes 0" in text
    repo_params.update(seeds=[0])
    assert "from a single run and seed; no interval" in write_report(settings(repo_params))
