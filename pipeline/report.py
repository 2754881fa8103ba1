"""Stage `report`: teacher, baseline and distilled student, per run and averaged over runs.

data/report.md is the table to read; data/report.json holds the same figures for `dvc metrics show`/`diff`.
With runs fold1..fold5 the mean row is the ESC-50 protocol's figure: accuracy averaged over the five folds.
"""
from __future__ import annotations

import json

import numpy as np

from . import layout
from .metrics import headline

ROLES = ("teacher", "baseline", "student")
DESCRIPTIONS = {"teacher": "teacher", "baseline": "student architecture, no KD", "student": "student, CMKD"}


def write_report(params: dict) -> str:
    runs = list(params["runs"])
    results = {run: {role: json.loads(layout.metrics(role, run).read_text()) for role in ROLES} for run in runs}
    first = results[runs[0]]
    key, _ = headline(first["teacher"])
    metric_keys = [k for k in ("accuracy", "mAP", "mean_auc", "d_prime") if k in first["teacher"]]
    mean = {role: {k: float(np.mean([results[run][role][k] for run in runs])) for k in metric_keys} for role in ROLES}
    std = {role: {k: float(np.std([results[run][role][k] for run in runs])) for k in metric_keys} for role in ROLES}

    lines = [
        "# CMKD report",
        "",
        f"Direction: **{first['teacher']['architecture']} ({first['teacher']['model']}) -> "
        f"{first['student']['architecture']} ({first['student']['model']})** "
        f"(lambda = {params['distill']['lambda']}, tau = {params['distill']['tau']}); test-split {key} per run"
        + (f", and the mean (± std) over {len(runs)} runs." if len(runs) > 1 else "."),
        "",
        "| run | test clips | " + " | ".join(DESCRIPTIONS[r] for r in ROLES) + " |",
        "|---|---|" + "---|" * len(ROLES),
    ]
    for run in runs:
        lines.append(f"| {run} | {results[run]['teacher']['clips']} | "
                     + " | ".join(f"{results[run][role][key]:.4f}" for role in ROLES) + " |")
    if len(runs) > 1:
        lines.append("| **mean** | | " + " | ".join(f"**{mean[role][key]:.4f}** ± {std[role][key]:.4f}"
                                                   for role in ROLES) + " |")
    if len(metric_keys) > 1:
        lines += ["", "Every metric, mean over runs:", "",
                  "| role | " + " | ".join(metric_keys) + " |", "|---|" + "---|" * len(metric_keys)]
        lines += [f"| {DESCRIPTIONS[role]} | " + " | ".join(f"{mean[role][k]:.4f}" for k in metric_keys) + " |"
                  for role in ROLES]
    gain = mean["student"][key] - mean["baseline"][key]
    vs_teacher = mean["student"][key] - mean["teacher"][key]
    lines += ["", f"Distillation changes the student's {key} by {gain:+.4f} over the baseline "
                  f"and by {vs_teacher:+.4f} relative to its teacher.", ""]
    text = "\n".join(lines)
    layout.REPORT.write_text(text)
    summary = {"metric": key, "runs": runs, "mean": mean, "std": std,
               "per_run": {run: {role: {k: results[run][role][k] for k in metric_keys} for role in ROLES}
                           for run in runs}}
    layout.REPORT_JSON.write_text(json.dumps(summary, indent=2) + "\n")
    return text
