"""`cmkd compare`: DVC experiments side by side, a setting chosen on validation alone, and its test score.

A sweep costs only student trainings (the teacher runs once): `dvc exp run --queue -S 'distill.tau=1,2,4' -S
'distill.lambda=0.1,0.5,0.9'`, `dvc queue start`. This reads `dvc exp show --json` (or a file of it), takes each
experiment's params and its report (results/report.json: per direction the student's mean validation score -- the
evaluate stage scores the saved model on the validation clips too -- and the test scores with their intervals),
and per direction picks the experiment whose student scores best on *validation*; the test score of that pick, with
the report's paired bootstrap interval of student - baseline, is what it reports. The test split never chooses.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPORT = "results/report.json"


@dataclass
class Experiment:
    name: str
    params: dict     # params.yaml, flattened (distill.tau: 4.0)
    report: dict     # results/report.json


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def experiments(shown: list) -> list[Experiment]:
    """The workspace, its baseline commits and their experiments from `dvc exp show --json`."""
    found = []

    def add(entry: dict, fallback: str):
        data = entry.get("data") or {}
        report = ((data.get("metrics") or {}).get(REPORT) or {}).get("data")
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
        if report and params:
            found.append(Experiment(entry.get("name") or fallback, flatten(params), report))

    for entry in shown:
        top = entry.get("rev") or "?"
        add(entry, top if top == "workspace" else top[:7])
        for group in entry.get("experiments") or []:
            for rev in group.get("revs") or []:
                add(rev, (rev.get("rev") or "?")[:7])
    # the workspace is listed apart from the commit it was committed as, with the same params and results
    return [e for e in found if not (e.name == "workspace" and any(
        o is not e and o.params == e.params and o.report == e.report for o in found))]


def read_experiments(path: Path | None = None) -> list[Experiment]:
    if path is not None:
        return experiments(json.loads(Path(path).read_text()))
    result = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {result.stderr.strip()[-500:]}")
    return experiments(json.loads(result.stdout))


def varied(found: list[Experiment]) -> list[str]:
    """The params that differ between the experiments (what the sweep changed)."""
    keys = sorted({k for e in found for k in e.params})
    return [k for k in keys if len({json.dumps(e.params.get(k), sort_keys=True) for e in found}) > 1]


def choose(found: list[Experiment], direction: str) -> tuple[list[dict], dict | None]:
    """The rows of one direction, best validation first, and the pick (None if no experiment has validation
    scores)."""
    rows = []
    for e in found:
        summary = e.report.get(direction)
        if not summary:
            continue
        key = summary.get("metric", e.report.get("metric", "accuracy"))
        rows.append({"experiment": e.name, "params": {k: e.params.get(k) for k in varied(found)},
                     "validation": (summary.get("validation") or {}).get("student"),
                     "test": summary["mean"]["student"][key], "baseline": summary["mean"]["baseline"][key],
                     "teacher": summary["mean"]["teacher"][key], "gain": summary["student_minus_baseline"],
                     "metric": key, "runs": e.report.get("runs")})
    rows.sort(key=lambda r: -(r["validation"] if r["validation"] is not None else float("-inf")))
    scored = [r for r in rows if r["validation"] is not None]
    return rows, (scored[0] if scored else None)
