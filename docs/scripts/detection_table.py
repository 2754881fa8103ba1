"""The detection table of docs/measurements.md "Detection in silence": each model's test soundscapes scored with
thresholds tuned on the validation ones, by window voting and by the model's own steps; the gate's margin chosen on
the validation soundscapes alone.

    python docs/scripts/detection_table.py SCAPES OUT name=checkpoint.pt [name=checkpoint.pt ...]

(names ast, cnn, ast_student, cnn_student pair students with baselines; every model but lite0 takes part in choosing
the margin)

SCAPES: `cmkd soundscapes --out` (val/, test/, val.tsv, test.tsv, *_quiet.tsv, soundscapes.json). Writes
OUT/<name>-<timeline>-gate<dB>/ (detect's outputs) and OUT/table.json.
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
    (scapes / "classes.txt").write_text("\n".join(json.loads((scapes / "soundscapes.json").read_text())
                                                  ["event classes"]) + "\n")
    start = time.perf_counter()
    summary = detect(model, [scapes / split], out, tune=Validation(scapes / "val", scapes / "val.tsv"),
                     score=scapes / f"{split}.tsv", classes=str(scapes / "classes.txt"), pictures=split == "test",
                     method=method, gate_db=gate, quiet=scapes / f"{split}_quiet.tsv")
    return {**summary["scores"], "seconds": round(time.perf_counter() - start, 1)}


def main(scapes: Path, out: Path, models: dict[str, Path], choosers: list[str]) -> None:
    """The margin is chosen on the `choosers` models' validation scores (per-step timelines), then used for both
    timelines of every model."""
    table = {"validation": {}, "test": {}}
    for name in choosers:
        for gate in GATES:
            key = f"{name}-frames-gate{gate}"
            table["validation"][key] = run(models[name], scapes, out / "val" / key, "frames", gate, "val")
            print(key, {k: table["validation"][key][k] for k in ("event_f1", "quiet_alarms_per_minute")}, flush=True)
    # the margin with the best mean validation event F1 (ties: the higher margin, fewer alarms in silence)
    means = {g: sum(table["validation"][f"{n}-frames-gate{g}"]["event_f1"] for n in choosers) / len(choosers)
             for g in GATES}
    gate = max(GATES, key=lambda g: (round(means[g], 4), -1 if g is None else g))
    chosen = {method: gate for method in METHODS}
    table["chosen_gate"], table["validation_mean_event_f1"] = gate, {str(g): v for g, v in means.items()}
    for name, model in models.items():
        for method in METHODS:
            for gate in ([chosen[method], None] if method == "frames" else [chosen[method]]):
                key = f"{name}-{method}-gate{gate}"
                table["test"][key] = run(model, scapes, out / "test" / key, method, gate, "test")
                print(key, {k: table["test"][key][k] for k in ("event_f1", "psds1", "quiet_alarms_per_minute")},
                      flush=True)
    counts = {k: json.loads((out / "test" / k / "scores.json").read_text())["file_counts"] for k in table["test"]}
    pairs = {}
    for name in models:
        g = chosen["frames"]
        pairs[f"{name}: frames - windows"] = paired_difference(counts[f"{name}-frames-gate{g}"],
                                                               counts[f"{name}-windows-gate{chosen['windows']}"])
        pairs[f"{name}: gate - no gate (frames)"] = paired_difference(counts[f"{name}-frames-gate{g}"],
                                                                      counts[f"{name}-frames-gateNone"])
    for student, baseline in (("ast_student", "ast"), ("cnn_student", "cnn")):
        if student in models and baseline in models:
            for method in METHODS:
                g = chosen[method]
                pairs[f"{student} - {baseline} ({method})"] = paired_difference(
                    counts[f"{student}-{method}-gate{g}"], counts[f"{baseline}-{method}-gate{g}"])
    table["paired_event_f1"] = pairs
    for split in ("validation", "test"):
        for scores in table[split].values():
            scores.pop("file_counts", None)
            scores.pop("class_event_f1", None)
    (out / "table.json").write_text(json.dumps(table, indent=1, default=float) + "\n")


if __name__ == "__main__":
    given = {a.split("=")[0]: Path(a.split("=", 1)[1]) for a in sys.argv[3:]}
    main(Path(sys.argv[1]), Path(sys.argv[2]), given, [n for n in given if n != "lite0"])
