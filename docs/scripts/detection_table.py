"""The detection table of docs/measurements.md "Detection in silence": each model's test soundscapes scored with
thresholds tuned on the validation ones, by window voting and by the model's own steps; the gate's margin chosen on
the validation soundscapes alone.

    python docs/scripts/detection_table.py val SCAPES OUT name=checkpoint.pt [...]          # margins, validation
    python docs/scripts/detection_table.py test SCAPES OUT GATE name=checkpoint.pt [...]   # the chosen margin, test
    python docs/scripts/detection_table.py table SCAPES OUT name=checkpoint.pt [...]        # OUT/table.json

(each phase can run in several processes, a share of the models each; names ast, cnn, ast_student, cnn_student pair
students with baselines; every model but lite0 takes part in choosing the margin)

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


def choose(out: Path, choosers: list[str]) -> tuple[float | None, dict]:
    """The margin with the best mean validation event F1 of the choosers (ties: the higher margin)."""
    def f1(name, gate):
        return json.loads((out / "val" / f"{name}-frames-gate{gate}" / "scores.json").read_text())["event_f1"]
    means = {g: sum(f1(n, g) for n in choosers) / len(choosers) for g in GATES}
    return max(GATES, key=lambda g: (round(means[g], 4), -1 if g is None else g)), means


def table(out: Path, models: list[str], choosers: list[str]) -> dict:
    gate, means = choose(out, choosers)
    read = {split: {p.name: json.loads((p / "scores.json").read_text()) for p in sorted((out / split).iterdir())
                    if (p / "scores.json").exists()} for split in ("val", "test")}
    counts = {k: v.pop("file_counts") for k, v in read["test"].items()}
    for scores in (*read["val"].values(), *read["test"].values()):
        scores.pop("file_counts", None)
        scores.pop("class_event_f1", None)
    pairs = {}
    for name in models:
        pairs[f"{name}: frames - windows"] = paired_difference(counts[f"{name}-frames-gate{gate}"],
                                                               counts[f"{name}-windows-gate{gate}"])
        pairs[f"{name}: gate - no gate (frames)"] = paired_difference(counts[f"{name}-frames-gate{gate}"],
                                                                      counts[f"{name}-frames-gateNone"])
    for student, baseline in (("ast_student", "ast"), ("cnn_student", "cnn")):
        if student in models and baseline in models:
            for method in METHODS:
                pairs[f"{student} - {baseline} ({method})"] = paired_difference(
                    counts[f"{student}-{method}-gate{gate}"], counts[f"{baseline}-{method}-gate{gate}"])
    return {"chosen_gate": gate, "validation_mean_event_f1": {str(g): v for g, v in means.items()},
            "validation": read["val"], "test": read["test"], "paired_event_f1": pairs}


def main(phase: str, scapes: Path, out: Path, models: dict[str, Path], gate: float | None = None) -> None:
    """val: each model's per-step timeline at every margin, on the validation soundscapes; test: each model by both
    timelines at `gate` and per step without the gate; table: OUT/table.json from what the two wrote."""
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


if __name__ == "__main__":
    phase, scapes, out, *rest = sys.argv[1:]
    margin = None
    if phase == "test":
        margin, rest = (None if rest[0] == "None" else float(rest[0])), rest[1:]
    main(phase, Path(scapes), Path(out), {a.split("=")[0]: Path(a.split("=", 1)[1]) for a in rest}, margin)
