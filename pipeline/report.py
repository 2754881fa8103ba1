"""Stage `report`: a Markdown table comparing the teacher, the baseline and the distilled student."""
from __future__ import annotations

import json

from . import layout
from .metrics import headline


def write_report(params: dict) -> str:
    results = {role: json.loads(layout.metrics(role).read_text()) for role in ("teacher", "baseline", "student")}
    key, _ = headline(results["teacher"])
    metric_keys = [k for k in ("accuracy", "mAP", "mean_auc", "d_prime") if k in results["teacher"]]
    lines = [
        "# CMKD report",
        "",
        f"Direction: **{results['teacher']['architecture']} -> {results['student']['architecture']}** "
        f"(lambda = {params['distill']['lambda']}, tau = {params['distill']['tau']}), "
        f"test split of {results['teacher']['clips']} clips.",
        "",
        "| model | role | " + " | ".join(metric_keys) + " |",
        "|---|---|" + "---|" * len(metric_keys),
    ]
    descriptions = {"teacher": "teacher", "baseline": "student architecture, no KD", "student": "student, CMKD"}
    for role, r in results.items():
        lines.append(f"| {r['model']} | {descriptions[role]} | " + " | ".join(f"{r[k]:.4f}" for k in metric_keys) + " |")
    gain = results["student"][key] - results["baseline"][key]
    vs_teacher = results["student"][key] - results["teacher"][key]
    lines += ["", f"Distillation changes the student's {key} by {gain:+.4f} over the baseline "
                  f"and by {vs_teacher:+.4f} relative to its teacher.", ""]
    text = "\n".join(lines)
    layout.REPORT.write_text(text)
    return text
