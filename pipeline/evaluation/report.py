"""Stage `report`: teacher, baseline and distilled student over every run and seed, with the spread, not one number.

results/report.md is the table to read; results/report.json holds the aggregates for `dvc metrics` / `dvc exp
show`; results/plots/ holds the data `dvc plots show` draws (dvc.yaml's top-level plots): the validation curves of
the three roles, the student's confusion matrix (single-label) and the per-class values of every role.

The differences student - baseline and student - teacher are paired by run and seed (the same split and seed
trained each side), with a 95 % t-interval over the pairs; a difference whose interval excludes 0 is called
beyond the noise.
"""
from __future__ import annotations

import csv
import json
import math
import warnings

import numpy as np
from scipy import stats

from .. import layout
from ..runs import Run
from ..settings import ROLES
from .metrics import REPORTED, headline

DESCRIPTIONS = {"teacher": "teacher", "baseline": "student architecture, no KD", "student": "student, CMKD"}


def paired(differences: list[float]) -> dict:
    """Mean of paired differences with its 95 % t-interval (none for a single pair)."""
    d = np.asarray(differences, dtype=np.float64)
    out = {"mean": float(d.mean()), "pairs": len(d)}
    if len(d) > 1:
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
        out.update(std=float(d.std(ddof=1)), ci95_low=out["mean"] - half, ci95_high=out["mean"] + half)
    return out


def verdict(name: str, diff: dict, key: str) -> str:
    if diff["pairs"] < 2:
        return (f"{name}: {diff['mean']:+.4f} {key} from a single run and seed; no interval (add runs or seeds "
                f"to tell a difference from noise).")
    beyond = diff["ci95_low"] > 0 or diff["ci95_high"] < 0
    where = ("beyond the noise: the 95 % interval excludes 0" if beyond else
             "within the noise: the 95 % interval includes 0")
    return (f"{name}: {diff['mean']:+.4f} {key} (95 % interval {diff['ci95_low']:+.4f} to {diff['ci95_high']:+.4f}, "
            f"{diff['pairs']} paired runs and seeds), {where}.")


def write_report(settings) -> str:
    runs = settings.all_runs()
    results = {run: {role: json.loads(layout.metrics(role, run).read_text()) for role in ROLES} for run in runs}
    first = results[runs[0]]
    key, _ = headline(first["teacher"])
    metric_keys = [k for k in REPORTED if k in first["teacher"]]
    values = {role: {k: [results[run][role][k] for run in runs] for k in metric_keys} for role in ROLES}
    mean = {role: {k: float(np.mean(v)) for k, v in values[role].items()} for role in ROLES}
    std = {role: {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values[role].items()}
           for role in ROLES}
    vs_baseline = paired([s - b for s, b in zip(values["student"][key], values["baseline"][key])])
    vs_teacher = paired([s - t for s, t in zip(values["student"][key], values["teacher"][key])])

    lines = [
        "# CMKD report",
        "",
        f"Direction: **{first['teacher']['architecture']} ({first['teacher']['model']}) -> "
        f"{first['student']['architecture']} ({first['student']['model']})** "
        f"(lambda = {settings.distill.lam}, tau = {settings.distill.tau}); test-split {key} per run and seed"
        + (f", and the mean ± standard deviation over all {len(runs)}." if len(runs) > 1 else "."),
        "",
        "| run | seed | test clips | " + " | ".join(DESCRIPTIONS[r] for r in ROLES) + " |",
        "|---|---|---|" + "---|" * len(ROLES),
    ]
    for run in runs:
        lines.append(f"| {run.split} | {run.seed} | {results[run]['teacher']['clips']} | "
                     + " | ".join(f"{results[run][role][key]:.4f}" for role in ROLES) + " |")
    if len(runs) > 1:
        lines.append("| **mean** | | | " + " | ".join(f"**{mean[role][key]:.4f}** ± {std[role][key]:.4f}"
                                                      for role in ROLES) + " |")
    if len(metric_keys) > 1:
        lines += ["", "Every metric, mean over runs and seeds:", "",
                  "| role | " + " | ".join(metric_keys) + " |", "|---|" + "---|" * len(metric_keys)]
        lines += [f"| {DESCRIPTIONS[role]} | " + " | ".join(f"{mean[role][k]:.4f}" for k in metric_keys) + " |"
                  for role in ROLES]
    lines += unscored_classes(results)
    lines += ["", verdict("Student minus baseline (the gain from distillation)", vs_baseline, key),
              verdict("Student minus teacher", vs_teacher, key), ""]
    lines += class_changes(runs, first["student"]["architecture"])
    text = "\n".join(lines)
    layout.RESULTS.mkdir(parents=True, exist_ok=True)
    layout.REPORT.write_text(text)
    summary = {"metric": key, "runs": len(runs), "mean": mean, "std": std,
               "student_minus_baseline": vs_baseline, "student_minus_teacher": vs_teacher}
    layout.REPORT_JSON.write_text(json.dumps(summary, indent=2) + "\n")
    write_plots(runs, key)
    return text


def unscored_classes(results: dict) -> list[str]:
    """Which classes each run's test split could not score (no positive clip: no AP, no accuracy), so that a mean
    over fewer classes than the dataset has is never read as the whole."""
    lines = []
    for run, roles in results.items():
        metrics = roles["teacher"]
        unscored = metrics.get("classes_unscored") or []
        if unscored:
            total = metrics["classes_scored"] + len(unscored)
            lines.append(f"- {run.split}, seed {run.seed}: {metrics['classes_scored']} of {total} classes scored; "
                         f"no positive test clip for {', '.join(unscored)}")
    return ["", "Classes the test split could not score (the means above are over the others):", "", *lines] \
        if lines else []


def per_class_means(runs: list[Run]) -> tuple[str, list[str], dict[str, np.ndarray]]:
    """(which per-class value, class names, role -> mean over runs and seeds per class; NaN where never scored)."""
    tables = {role: [json.loads(layout.per_class(role, run).read_text()) for run in runs] for role in ROLES}
    what = "AP" if "AP" in tables["teacher"][0] else "accuracy"
    classes = tables["teacher"][0]["classes"]
    means = {}
    for role in ROLES:
        table = np.array([[np.nan if t[what][c] is None else t[what][c] for c in classes] for t in tables[role]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class scored in no run stays NaN
            means[role] = np.nanmean(table, axis=0)
    return what, classes, means


def class_changes(runs: list[Run], student: str, shown: int = 5) -> list[str]:
    """The classes the student gained or lost most against the baseline and the teacher."""
    what, classes, means = per_class_means(runs)
    lines = [f"Per-class {what} (mean over runs and seeds), where the student differs most:", ""]
    for other in ("baseline", "teacher"):
        diff = means["student"] - means[other]
        order = np.argsort(diff)
        ok = [i for i in order if np.isfinite(diff[i])]
        gained = ", ".join(f"{classes[i]} {diff[i]:+.3f}" for i in ok[::-1][:shown] if diff[i] > 0) or "none"
        lost = ", ".join(f"{classes[i]} {diff[i]:+.3f}" for i in ok[:shown] if diff[i] < 0) or "none"
        lines += [f"- vs the {other}: gained {gained}; lost {lost}"]
    return lines + [""]


def write_plots(runs: list[Run], key: str) -> None:
    """The data behind dvc.yaml's plots: validation curves, the student's confusion matrix, per-class values."""
    layout.PLOTS.mkdir(parents=True, exist_ok=True)
    curves = {role: [_curve(layout.live_dir(role, run) / "plots" / "metrics" / "val" / f"{key}.tsv")
                     for run in runs] for role in ROLES}
    (layout.PLOTS / "validation").mkdir(exist_ok=True)
    for role in ROLES:  # one file per role: the roles train for different numbers of epochs
        epochs = max(len(c) for c in curves[role])
        with open(layout.PLOTS / "validation" / f"{role}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", "value"])  # accuracy or mAP, as the title says
            writer.writerows([e + 1, _mean_at(curves[role], e)] for e in range(epochs))
    what, classes, means = per_class_means(runs)
    (layout.PLOTS / "per_class").mkdir(exist_ok=True)
    for role in ROLES:  # one file per role: DVC's bar chart takes one value column per file
        with open(layout.PLOTS / "per_class" / f"{role}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["class", "value"])
            writer.writerows([name, round(float(v), 4)] for name, v in zip(classes, means[role]) if np.isfinite(v))
    confusion = None
    for run in runs:
        counts = json.loads(layout.per_class("student", run).read_text()).get("confusion")
        if counts is not None:
            confusion = np.array(counts) if confusion is None else confusion + np.array(counts)
    with open(layout.PLOTS / "confusion.csv", "w", newline="") as f:  # one row per test clip, all runs and seeds
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        if confusion is not None:
            for t, p in zip(*np.nonzero(confusion)):
                writer.writerows([[classes[t], classes[p]]] * int(confusion[t, p]))


def _curve(tsv) -> list[float]:
    if not tsv.exists():
        return []
    with open(tsv, newline="") as f:
        return [float(row[-1]) for row in list(csv.reader(f, delimiter="\t"))[1:]]


def _mean_at(curves: list[list[float]], epoch: int):
    values = [c[epoch] for c in curves if len(c) > epoch]
    return round(float(np.mean(values)), 4) if values else ""
