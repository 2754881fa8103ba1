"""The features stage's peak memory and time on clips at rates that share no factor with 16 kHz, next to 44.1 kHz
(docs/measurements.md "Every sample rate"). Run from a checkout: `python docs/scripts/odd_rates.py OUT.json
[--clips N] [--target-frames N|auto]`: per rate, N clips of 5 s of tones in a manifest, `cmkd features` on them
(2 Dask threads, as params.yaml ships), its peak resident memory from /usr/bin/time and its wall time."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATES = (44100, 16393, 22257, 11127, 8012)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--target-frames", default=None, help="features.target_frames (default: params.yaml's)")
    args = parser.parse_args()
    checkout = Path.cwd()
    env = {**os.environ, "PYTHONPATH": str(checkout)}  # this checkout's library, whatever is installed
    results = {}
    for rate in RATES:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            rng = np.random.default_rng(rate)
            rows = ["path,labels"]
            for i in range(args.clips):
                t = np.arange(5 * rate) / rate
                sf.write(work / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)).astype("float32"),
                         rate)
                rows.append(f"c{i}.wav,{'ab'[i % 2]}")
            (work / "manifest.csv").write_text("\n".join(rows) + "\n")
            params = (checkout / "params.yaml").read_text().replace("source: builtin", "source: manifest", 1)
            params = params.replace("manifest: null", f"manifest: {work / 'manifest.csv'}", 1)
            if args.target_frames is not None:
                params = re.sub(r"target_frames: \S+", f"target_frames: {args.target_frames}", params, count=1)
            (work / "params.yaml").write_text(params)
            subprocess.run([sys.executable, "-m", "pipeline.cli", "prepare"], cwd=work, check=True,
                           capture_output=True, env=env)
            started = time.perf_counter()
            done = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M", sys.executable, "-m", "pipeline.cli",
                                   "features"], cwd=work, capture_output=True, text=True, env=env)
            seconds = time.perf_counter() - started
            peak = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_KB")]
            results[rate] = {"clips": args.clips, "exit": done.returncode, "seconds": round(seconds, 1),
                             "peak_mb": round(peak[0] / 1024) if peak else None,
                             "error": done.stderr.strip().splitlines()[-1] if done.returncode else None}
            print(rate, results[rate], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
