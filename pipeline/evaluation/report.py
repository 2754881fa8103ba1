"""Stage `report`: per direction, teacher, baseline and distilled student over every run and seed, with intervals.

results/report.md is the page to read; results/report.json holds the aggregates for `dvc metrics` / `dvc exp show`
(per direction: `forward.mean.student.accuracy`, `forward.student_minus_baseline.mean`, ...); results/plots/<direction>/
holds the data `dvc plots show` draws (dvc.yaml's top-level plots): the validation curves of the three roles, the
student's confusion matrix (single-label) and the per-class values of every role; results/figures/ the same as PNG
pictures (pipeline/evaluation/figures.py), linked from the report.

In a direction the teacher is the teacher's architecture trained on labels, the baseline the student's architecture
trained on labels, the student the student's architecture distilled from that teacher: with both directions each
label-trained model appears twice, as one direction's teacher and the other's baseline. The differences student -
baseline and student - teacher are paired by run, seed and test clip, with a bootstrap interval over the test clips
(and the runs, when there are 3 or more: pipeline/evaluation/statistics.py).
"""
from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass

import numpy as np

from .. import layout
from ..runs import Run
from ..settings import ROLES, Direction
from ..task import Task, metrics, task_named
from . import held_out
from .figures import draw_figures
from .statistics import Paired, difference, verdict

DESCRIPTIONS = {"teacher": "teacher", "baseline": "student architecture, no KD", "student": "student, CMKD"}


def model_name(role: str, direction: Direction) -> str:
    """The layout name of the model that plays `role` in `direction`."""
    return layout.student_model(direction.name) if role == "student" else \
        layout.labels_model(direction.architecture(role))


@dataclass
class DirectionResults:
    """One direction's metrics and test logits, per role and run."""
    direction: Direction
    runs: list[Run]
    metrics: dict   # role -> run -> metrics.json
    task: Task

    @classmethod
    def read(cls, direction: Direction, runs: list[Run]) -> "DirectionResults":
        scores = {role: {run: json.loads(layout.metrics(model_name(role, direction), run).read_text()) for run in runs}
                   for role in ROLES}
        return cls(direction, runs, scores, task_named(scores["teacher"][runs[0]].get("task", "single-label")))

    def values(self, role: str, key: str) -> list[float]:
        return [self.metrics[role][run][key] for run in self.runs]

    def test_clips(self, role: str, run: Run) -> held_out.Clips:
        """The role's model's logits on the run's test clips (with their ids and labels)."""
        return held_out.read(layout.held_out_logits(model_name(role, self.direction), run)).test

    def paired(self, a: str, b: str) -> list[Paired]:
        pairs = []
        for run in self.runs:
            first, second = self.test_clips(a, run), self.test_clips(b, run)
            if not np.array_equal(first.clip_ids, second.clip_ids):
                raise ValueError(f"{run}: the {a} and {b} were evaluated on other test clips; re-run dvc repro")
            pairs.append(Paired(first.logits, second.logits, first.labels))
        return pairs

    def per_class_means(self) -> tuple[str, list[str], dict[str, np.ndarray]]:
        """(which per-class value, class names, role -> mean over runs and seeds per class; NaN where never
        scored)."""
        tables = {role: [json.loads(layout.per_class(model_name(role, self.direction), run).read_text())
                         for run in self.runs] for role in ROLES}
        what = self.task.per_class
        classes = tables["teacher"][0]["classes"]
        means = {}
        for role in ROLES:
            table = np.array([[np.nan if t[what][c] is None else t[what][c] for c in classes] for t in tables[role]])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a class scored in no run stays NaN
                means[role] = np.nanmean(table, axis=0)
        return what, classes, means

    def confusion(self, role: str) -> np.ndarray | None:
        """A role's confusion counts summed over runs and seeds (single-label), None for multi-label."""
        total = None
        for run in self.runs:
            counts = json.loads(layout.per_class(model_name(role, self.direction), run).read_text()).get("confusion")
            if counts is not None:
                total = np.array(counts) if total is None else total + np.array(counts)
        return total

    def validation_curves(self, role: str) -> list[list[float]]:
        """Per run, a role's validation score after each epoch (DVCLive's curves)."""
        return [_curve(layout.live_dir(model_name(role, self.direction), run) / "plots" / "metrics" / "val"
                       / f"{self.task.headline}.tsv") for run in self.runs]

    def summary(self) -> dict:
        key = self.task.headline
        keys = [k for k in metrics.reported(self.task) if k in self.metrics["teacher"][self.runs[0]]]
        mean = {role: {k: float(np.mean(self.values(role, k))) for k in keys} for role in ROLES}
        std = {role: {k: float(np.std(self.values(role, k), ddof=1)) if len(self.runs) > 1 else 0.0 for k in keys}
               for role in ROLES}
        validation = {role: float(np.mean(self.values(role, f"val_{key}"))) for role in ROLES
                      if f"val_{key}" in self.metrics[role][self.runs[0]]}
        return {"teacher": self.direction.teacher, "student": self.direction.student, "mean": mean, "std": std,
                "validation": validation,
                "student_minus_baseline": difference(self.paired("student", "baseline"), self.task),
                "student_minus_teacher": difference(self.paired("student", "teacher"), self.task), "metric": key}


def write_report(settings) -> str:
    runs = settings.all_runs()
    results = [DirectionResults.read(direction, runs) for direction in settings.all_directions()]
    summaries = {r.direction.name: r.summary() for r in results}
    key = results[0].task.headline
    lines = ["# CMKD report", ""]
    if len(results) > 1:
        lines += side_by_side(results, summaries, key)
    for r in results:
        lines += direction_section(r, summaries[r.direction.name])
    layout.RESULTS.mkdir(parents=True, exist_ok=True)
    layout.REPORT_JSON.write_text(json.dumps({"metric": key, "task": results[0].task.name, "runs": len(runs),
                                              **summaries}, indent=2) + "\n")
    for r in results:
        write_plots(r)
    failed = draw_figures(results)
    if failed:
        lines += ["## Figures not drawn", "", *[f"- {line}" for line in failed], ""]
    text = "\n".join(lines)
    layout.REPORT.write_text(text)
    return text


def side_by_side(results: list[DirectionResults], summaries: dict, key: str) -> list[str]:
    lines = [f"Both directions, test-split {key}, mean over {len(results[0].runs)} runs and seeds (95 % intervals: "
             "paired bootstrap, below):", "",
             "| direction | teacher | baseline | student | student - baseline | student - teacher |",
             "|---|---|---|---|---|---|"]
    for r in results:
        s = summaries[r.direction.name]
        cells = [f"{s['mean'][role][key]:.4f}" for role in ROLES]
        diffs = [f"{d['mean']:+.4f} [{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}]"
                 for d in (s["student_minus_baseline"], s["student_minus_teacher"])]
        lines.append(f"| {r.direction} | " + " | ".join(cells + diffs) + " |")
    return lines + [""]


def direction_section(r: DirectionResults, s: dict) -> list[str]:
    key, runs, first = r.task.headline, r.runs, r.metrics
    name = r.direction.name
    distilled = {json.dumps(first["student"][run].get("distill"), sort_keys=True) for run in runs}
    with_ = "; ".join(f"lambda = {d.get('lambda')}, tau = {d.get('tau')}" for d in map(json.loads, sorted(distilled))
                      if d) or "lambda, tau: not recorded"
    lines = [
        f"## {name}: {r.direction.teacher} ({first['teacher'][runs[0]]['model']}) -> {r.direction.student} "
        f"({first['student'][runs[0]]['model']})",
        "",
        f"{with_}; test-split {key} per run and seed"
        + (f", and the mean ± standard deviation over all {len(runs)}." if len(runs) > 1 else "."),
        "",
        "| run | seed | test clips | " + " | ".join(DESCRIPTIONS[role] for role in ROLES) + " |",
        "|---|---|---|" + "---|" * len(ROLES),
    ]
    for run in runs:
        lines.append(f"| {run.split} | {run.seed} | {first['teacher'][run]['clips']} | "
                     + " | ".join(f"{first[role][run][key]:.4f}" for role in ROLES) + " |")
    if len(runs) > 1:
        lines.append("| **mean** | | | " + " | ".join(f"**{s['mean'][role][key]:.4f}** ± {s['std'][role][key]:.4f}"
                                                      for role in ROLES) + " |")
    keys = list(s["mean"]["teacher"])
    if len(keys) > 1:
        lines += ["", "Every metric, mean over runs and seeds:", "",
                  "| role | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        lines += [f"| {DESCRIPTIONS[role]} | " + " | ".join(f"{s['mean'][role][k]:.4f}" for k in keys) + " |"
                  for role in ROLES]
    lines += unscored_classes(r)
    lines += ["", verdict("Student minus baseline (the gain from distillation)", s["student_minus_baseline"], key),
              "", verdict("Student minus teacher", s["student_minus_teacher"], key), ""]
    lines += class_changes(r)
    lines += [f"![the three roles per run, with 95 % intervals](figures/{name}-roles.png)",
              f"![validation curves](figures/{name}-validation.png)"]
    if r.task.confusion:
        lines.append(f"![the student's and the baseline's confusion matrices](figures/{name}-confusion.png)")
    return lines + [""]


def unscored_classes(r: DirectionResults) -> list[str]:
    """Which classes each run's test split could not score (no positive clip: no AP, no accuracy), so that a mean
    over fewer classes than the dataset has is never read as the whole."""
    lines = []
    for run in r.runs:
        metrics = r.metrics["teacher"][run]
        unscored = metrics.get("classes_unscored") or []
        if unscored:
            total = metrics["classes_scored"] + len(unscored)
            lines.append(f"- {run.split}, seed {run.seed}: {metrics['classes_scored']} of {total} classes scored; "
                         f"no positive test clip for {', '.join(unscored)}")
    return ["", "Classes the test split could not score (the means above are over the others):", "", *lines] \
        if lines else []


def class_changes(r: DirectionResults, shown: int = 5) -> list[str]:
    """The classes the student gained or lost most against the baseline and the teacher."""
    what, classes, means = r.per_class_means()
    lines = [f"Per-class {what} (mean over runs and seeds), where the student differs most:", ""]
    for other in ("baseline", "teacher"):
        diff = means["student"] - means[other]
        ok = [i for i in np.argsort(diff) if np.isfinite(diff[i])]
        gained = ", ".join(f"{classes[i]} {diff[i]:+.3f}" for i in ok[::-1][:shown] if diff[i] > 0) or "none"
        lost = ", ".join(f"{classes[i]} {diff[i]:+.3f}" for i in ok[:shown] if diff[i] < 0) or "none"
        lines += [f"- vs the {other}: gained {gained}; lost {lost}"]
    return lines + [""]


def write_plots(r: DirectionResults) -> None:
    """The data behind dvc.yaml's plots: validation curves, the student's confusion matrix, per-class values."""
    folder = layout.PLOTS / r.direction.name
    (folder / "validation").mkdir(parents=True, exist_ok=True)
    for role in ROLES:  # one file per role: the roles train for different numbers of epochs
        curves = r.validation_curves(role)
        epochs = max(len(c) for c in curves)
        with open(folder / "validation" / f"{role}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", "value"])  # accuracy or mAP, as the title says
            writer.writerows([e + 1, _mean_at(curves, e)] for e in range(epochs))
    what, classes, means = r.per_class_means()
    (folder / "per_class").mkdir(exist_ok=True)
    for role in ROLES:  # one file per role: DVC's bar chart takes one value column per file
        with open(folder / "per_class" / f"{role}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["class", "value"])
            writer.writerows([name, round(float(v), 4)] for name, v in zip(classes, means[role]) if np.isfinite(v))
    counts = r.confusion("student")
    with open(folder / "confusion.csv", "w", newline="") as f:  # one row per test clip, all runs and seeds
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        if counts is not None:
            for t, p in zip(*np.nonzero(counts)):
                writer.writerows([[classes[t], classes[p]]] * int(counts[t, p]))


def _curve(tsv) -> list[float]:
    if not tsv.exists():
        return []
    with open(tsv, newline="") as f:
        return [float(row[-1]) for row in list(csv.reader(f, delimiter="\t"))[1:]]


def _mean_at(curves: list[list[float]], epoch: int):
    values = [c[epoch] for c in curves if len(c) > epoch]
    return round(float(np.mean(values)), 4) if values else ""
