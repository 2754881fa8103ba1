"""Issue 39's recordings, run through `cmkd detect` with its defaults (docs/measurements.md "Detection in silence"):
ten of the built-in test clips (1 s each, the first of each class) 4 s apart in quiet noise (30 dB under the
clips), and three files with nothing in them (quiet noise at -60 dB full scale, a room tone, digital silence),
each 60 s.

    python docs/scripts/quiet_recordings.py WORKSPACE CHECKPOINT OUT

WORKSPACE: a built-in `dvc repro`'s folder (its data/raw holds the clips); CHECKPOINT: one of its models. Writes
OUT/recordings/, OUT/<setting>/ (detect's outputs) and prints a JSON summary (events on clips, in the gaps, in the
quiet files) per setting.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.events.detect import detect
from pipeline.events.soundscapes import room_tone
from pipeline.features.audio import load_audio

RATE = 16000
SETTINGS = {"defaults": {}, "frames": {"method": "frames"}, "no gate": {"gate_db": None},
            "frames, no gate": {"method": "frames", "gate_db": None}}


def recordings(workspace: Path, out: Path) -> list[tuple[float, float, str]]:
    """Write the four recordings; the clips' spans in rec.wav, with their labels."""
    raw = workspace / "data" / "raw"
    with open(raw / "manifest.csv", newline="") as f:
        first = {}
        for r in csv.DictReader(f):
            if r["split"] == "test":
                first.setdefault(r["labels"], r)
        rows = list(first.values())[:10]
    clips = [load_audio(raw / r["path"], RATE).numpy() for r in rows]
    rng = np.random.default_rng(0)
    level = np.sqrt(np.mean(np.concatenate(clips) ** 2)) * 10 ** (-30 / 20)
    parts, spans, at = [level * rng.standard_normal(4 * RATE)], [], 4 * RATE
    for row, clip in zip(rows, clips):
        spans.append((at / RATE, (at + len(clip)) / RATE, row["labels"]))
        parts += [clip, level * rng.standard_normal(4 * RATE)]
        at += len(clip) + 4 * RATE
    out.mkdir(parents=True, exist_ok=True)
    sf.write(out / "rec.wav", np.concatenate(parts).astype(np.float32), RATE)
    n = 60 * RATE
    for name, audio in {"quiet_noise.wav": 10 ** (-60 / 20) * rng.standard_normal(n),
                        "room_tone.wav": room_tone(n, rng), "digital_silence.wav": np.zeros(n)}.items():
        sf.write(out / name, audio.astype(np.float32), RATE)
    return spans


def main(workspace: Path, checkpoint: Path, out: Path) -> dict:
    spans = recordings(workspace, out / "recordings")
    summary = {"clips": [{"onset": a, "offset": b, "label": c} for a, b, c in spans]}
    for setting, options in SETTINGS.items():
        folder = out / setting.replace(", ", "-").replace(" ", "-")
        detect(checkpoint, [out / "recordings"], folder, **options)
        found = json.loads((folder / "events.json").read_text())
        events = found[str(out / "recordings" / "rec.wav")]["events"]
        on_clip = [e for e in events if any(e["onset"] < b and e["offset"] > a for a, b, _ in spans)]
        right = [e for e in on_clip if any(e["onset"] < b and e["offset"] > a and e["label"] == c
                                           for a, b, c in spans)]
        summary[setting] = {
            "events": len(events), "on a clip": len(on_clip), "in a gap only": len(events) - len(on_clip),
            "on a clip, its class": len(right),
            "clips found": sum(any(e["onset"] < b and e["offset"] > a for e in events) for a, b, _ in spans),
            "quiet files' events": {Path(p).name: len(v["events"]) for p, v in found.items()
                                    if not p.endswith("rec.wav")},
            "step": found[str(out / "recordings" / "rec.wav")]["hop"]}
    return summary


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])), indent=1))
