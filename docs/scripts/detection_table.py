"""The detection table of docs/measurements.md "Detection in silence": each model's test soundscapes scored with
thresholds tuned on the validation ones, by window voting and by the model's own steps, with and without the gate;
the default timeline and the gate's margin chosen on the validation soundscapes alone.

    python docs/scripts/detection_table.py val SCAPES OUT name=checkpoint.pt [...]         # timelines x margins
    python docs/scripts/detection_table.py test SCAPES OUT GATE name=checkpoint.pt [...]  # the chosen margin, test
    python docs/scripts/detection_table.py table SCAPES OUT name=checkpoint.pt [...]       # OUT/table.{json,md}

(each phase can run in several processes, a share of the models each, and skips what an earlier run wrote; names
ast, cnn, ast_student, cnn_student pair students with baselines; every model but lite0 takes part in choosing the
timeline and the margin)

SCAPES: `cmkd soundscapes --out` (val/, test/, val.tsv, test.tsv, *_quiet.tsv, event_classes.txt). Writes
OUT/{val,test}/<name>-<timeline>-gate<dB>/ (detect's outputs), OUT/table.json and OUT/table.md.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pipeline.events.detect import Validation, detect
from pipeline.events.scoring import paired_difference

GATES = (None, 3.0, 6.0, 10.0)  # chosen among on validation
METHODS = ("windows", "frames")


def run(model: Path, scapes: Path, out: Path, method: str, gate: float | None, split: str) -> dict:
    """Thresholds tuned on val; scored on `split` (val itself for choosing the gate, test for the table)."""
    start = time.perf_counter()
    summary = detect(model, [scapes / split], out, tune=Validation(scapes / "val", scapes / "val.tsv"),
                     score=scapes / f"{split}.tsv", classes=str(scapes / "event_classes.txt"), pictures=split == "test",
                     method=method, gate_db=gate, quiet=scapes / f"{split}_quiet.tsv")
    return {**summary["scores"], "seconds": round(time.perf_counter() - start, 1)}


def choose(out: Path, choosers: list[str]) -> tuple[str, float | None, dict]:
    """The timeline and margin with the best mean validation event F1 of the choosers (ties: the higher margin)."""
    def f1(name, method, gate):
        return json.loads((out / "val" / f"{name}-{method}-gate{gate}" / "scores.json").read_text())["event_f1"]
    means = {(m, g): sum(f1(n, m, g) for n in choosers) / len(choosers) for m in METHODS for g in GATES}
    method, gate = max(means, key=lambda k: (round(means[k], 4), -1 if k[1] is None else k[1]))
    return method, gate, means


COLUMNS = {"event_f1": "event F1", "segment_f1": "segment F1", "psds1": "PSDS1", "psds2": "PSDS2",
           "onset_error_median": "onset error (s, median)", "quiet_alarms_per_minute": "alarms / min of quiet"}


def markdown(result: dict) -> str:
    """The test table and the paired differences, as docs/measurements.md shows them."""
    lines = ["| model | timeline | gate | " + " | ".join(COLUMNS.values()) + " |",
             "|---" * (3 + len(COLUMNS)) + "|"]
    for key, scores in result["test"].items():
        name, method, gate = key.rsplit("-", 2)
        cells = [f"{scores[c]:.3f}" if isinstance(scores.get(c), float) else str(scores.get(c)) for c in COLUMNS]
        lines.append(f"| {name} | {method} | {gate.removeprefix('gate')} | " + " | ".join(cells) + " |")
    lines += ["", "| event F1, paired | a | b | a - b [95 % interval] |", "|---|---|---|---|"]
    for what, d in result["paired_event_f1"].items():
        lines.append(f"| {what} | {d['a']:.3f} | {d['b']:.3f} | {d['difference']:+.3f} "
                     f"[{d['ci95_low']:+.3f}, {d['ci95_high']:+.3f}] |")
    return "\n".join(lines) + "\n"


def table(out: Path, models: list[str], choosers: list[str]) -> dict:
    method, gate, means = choose(out, choosers)
    other = next(m for m in METHODS if m != method)
    read = {split: {p.name: json.loads((p / "scores.json").read_text()) for p in sorted((out / split).iterdir())
                    if (p / "scores.json").exists()} for split in ("val", "test")}
    counts = {k: v.pop("file_counts") for k, v in read["test"].items()}
    for scores in (*read["val"].values(), *read["test"].values()):
        scores.pop("file_counts", None)
        scores.pop("class_event_f1", None)
    pairs = {}
    for name in models:
        pairs[f"{name}: {other} - {method}"] = paired_difference(counts[f"{name}-{other}-gate{gate}"],
                                                                 counts[f"{name}-{method}-gate{gate}"])
        pairs[f"{name}: gate - no gate ({method})"] = paired_difference(counts[f"{name}-{method}-gate{gate}"],
                                                                        counts[f"{name}-{method}-gateNone"])
    for student, baseline in (("ast_student", "ast"), ("cnn_student", "cnn")):
        if student in models and baseline in models:
            for m in (method, other):
                pairs[f"{student} - {baseline} ({m})"] = paired_difference(
                    counts[f"{student}-{m}-gate{gate}"], counts[f"{baseline}-{m}-gate{gate}"])
    return {"chosen_timeline": method, "chosen_gate": gate,
            "validation_mean_event_f1": {f"{m} gate {g}": v for (m, g), v in means.items()},
            "validation": read["val"], "test": read["test"], "paired_event_f1": pairs}


def main(phase: str, scapes: Path, out: Path, models: dict[str, Path], gate: float | None = None) -> None:
    """val: each model by both timelines at every margin, on the validation soundscapes; test: each model by both
    timelines at `gate` and without the gate; table: OUT/table.json and OUT/table.md from what the two wrote."""
    if phase == "val":
        for name, model in models.items():
            for method in METHODS:
                for g in GATES:
                    key = f"{name}-{method}-gate{g}"
                    if not (out / "val" / key / "scores.json").exists():
                        print(key, run(model, scapes, out / "val" / key, method, g, "val")["event_f1"], flush=True)
    elif phase == "test":
        for name, model in models.items():
            for method, g in (("frames", gate), ("windows", gate), ("frames", None), ("windows", None)):
                key = f"{name}-{method}-gate{g}"
                if not (out / "test" / key / "scores.json").exists():
                    print(key, run(model, scapes, out / "test" / key, method, g, "test")["event_f1"], flush=True)
    else:
        names = list(models)
        result = table(out, names, [n for n in names if n != "lite0"])
        (out / "table.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
        (out / "table.md").write_text(markdown(result))


if __name__ == "__main__":
    phase, scapes, out, *rest = sys.argv[1:]
    margin = None
    if phase == "test":
        margin, rest = (None if rest[0] == "None" else float(rest[0])), rest[1:]
    main(phase, Path(scapes), Path(out), {a.split("=")[0]: Path(a.split("=", 1)[1]) for a in rest}, margin)
