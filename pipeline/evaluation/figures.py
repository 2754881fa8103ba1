"""The report's pictures, drawn offline with matplotlib into results/figures/ (PNG), from the data the report reads.

Per direction:
  <direction>-roles.png       per run and seed, and for the mean, the teacher's, baseline's and student's test
                              metric with its 95 % bootstrap interval over the test clips
  <direction>-validation.png  the validation curves of the three roles (mean over runs and seeds; each run faint)
  <direction>-confusion.png   single-label: the baseline's and the student's confusion matrices, all runs summed
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import layout  # noqa: E402
from ..settings import ROLES  # noqa: E402
from .statistics import interval_of  # noqa: E402

COLOURS = {"teacher": "#4c72b0", "baseline": "#8c8c8c", "student": "#dd8452"}
DPI = 110


def draw_figures(results: list) -> list[str]:
    """Every figure of every direction; a figure that cannot be drawn is left out and named, with why, in the list
    returned (the report says so), so that a drawing error never loses a finished run's report."""
    layout.FIGURES.mkdir(parents=True, exist_ok=True)
    failed = []
    for r in results:
        drawn = {"roles": roles_figure, "validation": validation_figure}
        if r.task.confusion:
            drawn["confusion"] = confusion_figure
        for name, figure in drawn.items():
            try:
                figure(r)
            except Exception as e:  # noqa: BLE001 -- any drawing error: the numbers are already written
                plt.close("all")
                failed.append(f"{r.direction.name}: {name} figure not drawn ({type(e).__name__}: {e})")
    return failed


def roles_figure(r) -> None:
    key, runs = r.task.headline, r.runs
    labels = [f"{run.split}\nseed {run.seed}" for run in runs] + (["mean"] if len(runs) > 1 else [])
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(labels) + 1.5), 4.0))
    width = 0.25
    for i, role in enumerate(ROLES):
        values, lows, highs = [], [], []
        for run in runs:
            clips = r.test_clips(role, run)
            low, high = interval_of(clips.logits, clips.labels, r.task)
            values.append(r.metrics[role][run][key])
            lows.append(low)
            highs.append(high)
        if len(runs) > 1:
            values.append(float(np.mean(values)))
            lows.append(float(np.mean(lows)))
            highs.append(float(np.mean(highs)))
        x = np.arange(len(labels)) + (i - 1) * width
        ax.bar(x, values, width, color=COLOURS[role], label=f"{role} ({r.direction.architecture(role)})")
        below, above = np.subtract(values, lows), np.subtract(highs, values)  # >= 0: the intervals hold the values
        ax.errorbar(x, values, yerr=[np.maximum(below, 0), np.maximum(above, 0)], fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2)
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_ylabel(f"test {key}")
    ax.set_title(f"{r.direction}: test {key} per run\n(bars: 95 % bootstrap intervals over the test clips)",
                 fontsize=9)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, ncol=3, loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(layout.FIGURES / f"{r.direction.name}-roles.png", dpi=DPI)
    plt.close(fig)


def validation_figure(r) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for role in ROLES:
        curves = [c for c in r.validation_curves(role) if c]
        for curve in curves if len(curves) > 1 else []:
            ax.plot(np.arange(1, len(curve) + 1), curve, color=COLOURS[role], alpha=0.2, linewidth=0.8)
        epochs = max((len(c) for c in curves), default=0)
        mean = [np.mean([c[e] for c in curves if len(c) > e]) for e in range(epochs)]
        ax.plot(np.arange(1, epochs + 1), mean, color=COLOURS[role], linewidth=2,
                label=f"{role} ({r.direction.architecture(role)})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {r.task.headline}")
    ax.set_title(f"{r.direction}: validation {r.task.headline} per epoch\n(mean over runs and seeds; each run faint)",
                 fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(layout.FIGURES / f"{r.direction.name}-validation.png", dpi=DPI)
    plt.close(fig)


def confusion_figure(r) -> None:
    _, classes, _ = r.per_class_means()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.6))
    for ax, role in zip(axes, ("baseline", "student")):
        counts = r.confusion(role)
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        accuracy = np.trace(counts) / max(counts.sum(), 1)
        ax.set_title(f"{role} ({r.direction.architecture(role)}): accuracy {accuracy:.3f}", fontsize=9)
        ticks = np.arange(len(classes))
        size = 7 if len(classes) <= 12 else 4
        ax.set_xticks(ticks, classes, rotation=90, fontsize=size)
        ax.set_yticks(ticks, classes, fontsize=size)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
    fig.suptitle(f"{r.direction}: confusion on the test clips of every run (rows: share of each class)", fontsize=9)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(layout.FIGURES / f"{r.direction.name}-confusion.png", dpi=DPI)
    plt.close(fig)
