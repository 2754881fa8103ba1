"""`cmkd bench --section detect`: `cmkd detect`'s real-time factor on long recordings for each family's model, the
waveform ONNX export window by window, and the peak memory of the whole command on a longer file."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .common import Results, bench_models, random_checkpoint

DETECT_MINUTES = {"tiny": (1.0, 2.0), "cpu": (10.0, 60.0), "gpu": (60.0, 60.0)}  # (timed file, memory file)


def noise_recording(path: Path, minutes: float, seed: int = 0) -> Path:
    """`minutes` of 16 kHz noise with a tone now and then, written a minute at a time."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", 16000, 1, "PCM_16") as f:
        for _ in range(int(np.ceil(minutes))):
            minute = 0.05 * rng.standard_normal(16000 * 60)
            at = rng.integers(0, len(minute) - 16000)
            minute[at : at + 16000] += 0.3 * np.sin(2 * np.pi * rng.uniform(200, 4000) * np.arange(16000) / 16000)
            f.write(minute.astype(np.float32))
    return path


def bench_detect(size_name: str, results: Results, frames: int = 512, hop: float = 0.5) -> None:
    """`cmkd detect` on long recordings: the real-time factor (seconds of audio per second of wall time) of each
    family's model (random weights; ESC-50's 50 classes, 512-frame windows) through the streamed timeline, per step
    (windows half a window apart) and by window voting (every `hop` s), and of the waveform ONNX export run window
    by window in onnxruntime (each window's fbank computed inside the graph again); then the peak memory of the
    whole `cmkd detect` process on a longer file."""
    import subprocess
    import sys

    from ..events.timeline import Scorer
    from ..export import export

    timed_minutes, long_minutes = DETECT_MINUTES[size_name]
    recording = noise_recording(Path("detect_timed.wav"), timed_minutes)
    features = {"sample_rate": 16000, "num_mel_bins": 128, "frame_shift_ms": 10.0, "frame_length_ms": 25.0,
                "target_frames": frames}
    classes = [f"c{i}" for i in range(50)]
    checkpoints = {}
    for name in bench_models(size_name).values():
        path = random_checkpoint(name, Path(f"detect_{name}.pt"), classes, frames, normalization={"mean": -6.0,
                                 "std": 3.0}, features=features)
        checkpoints[name] = path
        for method in ("frames", "windows"):
            scorer = Scorer(path, hop=hop, method=method)
            started = time.perf_counter()
            list(scorer.timelines([recording]))
            rtf = timed_minutes * 60 / (time.perf_counter() - started)
            apart = f"{scorer.hop * scorer.shift:g} s"
            results.add("detect", f"{name}, streamed timeline ({method})", rtf, "x real time",
                        f"{timed_minutes:g} min file, {frames}-frame windows every {apart}, the level gate, "
                        f"{torch.get_num_threads()} threads")
    name, path = next(iter(checkpoints.items()))
    graph = Path(export(path, Path(f"detect_{name}.onnx"), "onnx", input_kind="waveform")["out"])
    rtf = onnx_windows_rtf(graph, recording, frames, hop)
    results.add("detect", f"{name}, waveform ONNX window by window", rtf, "x real time",
                "onnxruntime, CPU, batches of 32 windows, the fbank of every window computed in the graph")
    long = noise_recording(Path("detect_long.wav"), long_minutes, seed=1)
    command = ["/usr/bin/time", "-f", "PEAK_RSS_KB %M", sys.executable, "-m", "pipeline.cli", "detect", str(path),
               str(long), "--out", "detect_out", "--no-pictures"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    results.add("detect", f"{name}, cmkd detect peak memory, {long_minutes:g} min file", peak / 1024, "MB",
                f"the whole process; {long_minutes * 60 / seconds:.1f} x real time with start-up")


def onnx_windows_rtf(graph: Path, recording: Path, frames: int, hop: float, batch: int = 32) -> float:
    """Real-time factor of a waveform-in ONNX graph over a recording in windows `hop` seconds apart."""
    import onnxruntime as ort
    import soundfile as sf

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    wave, rate = sf.read(recording, dtype="float32")
    size, step = int(((frames - 1) * 0.010 + 0.025) * rate), int(hop * rate)
    starts = range(0, max(1, len(wave) - size + 1), step)
    started = time.perf_counter()
    for k in range(0, len(starts), batch):
        session.run(None, {feed: np.stack([wave[s : s + size] for s in starts[k : k + batch]])})
    return len(wave) / rate / (time.perf_counter() - started)
