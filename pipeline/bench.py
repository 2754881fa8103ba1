"""`cmkd bench`: how fast each step runs, and how close the real cached path comes to the model's own speed.

It builds a throwaway workspace of synthetic audio at the chosen size and runs the real code on it:
  features  extraction clips/s (decode + fbank + Zarr write) with 1 and N Dask workers (float64 on the CPU, and on a
            GPU in float32 and float64); the fbank computation alone in each precision
  read      random-access batches from the feature and prediction stores, samples/s, with 0 and N loader workers
  dump      the teacher-prediction dump, clips/s: the whole stage (store read + teacher forward + Zarr write, with
            its fixed costs), and its loop alone at steady state
  train     student samples/s three ways: pure (tensors already on the device: the ceiling), cached (features and
            cached predictions through the loader, or resident in device memory: the real path), online (the frozen
            teacher run on every batch: what the cache saves); with --compile also the compiled student and its
            compile time. Each is the median of `repeats` interleaved rounds.
  bootstrap the report's paired bootstrap of an mAP difference at AudioSet's evaluation shape (20,000 clips x 527
            classes on the cpu and gpu sizes): this code's weighted draws against the former way (each draw's rows
            copied and scored class by class with scikit-learn), seconds per draw and for the report's resamples
It prints a table and writes the figures as JSON.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from . import layout
from .cache.dump import dump
from .data.batches import Augmenter, BatchSource, ZarrRows, inference_plan, to_device, training_plan
from .data.resident import ResidentRows
from .evaluation.inference import predict_batches
from .features.extract import write_feature_store
from .features.fbank import BatchedFbank, pad_batch
from .models import build_model, family
from .models.checkpoint import Checkpoint, load_checkpoint, read_checkpoint, save_checkpoint, trained_on
from .prepare import prepare
from .runs import Run
from .runtime import device as default_device
from .settings import settings_from
from .stores.features import FeatureStore
from .stores.predictions import PredictionStore
from .task import SingleLabel
from .training.loop import for_training, train_step
from .training.teaching import CachedTeacher, OnlineTeacher


@dataclass(frozen=True)
class Size:
    clips: int
    clip_seconds: float
    frames: int
    batch: int      # a transformer student's batch
    cnn_batch: int  # a CNN student's: its step is ~3x faster and keeps a GPU busy only at larger batches
    steps: int  # timed steps (or batches) per measurement, after `warmup` untimed ones
    warmup: int
    repeats: int  # rounds of the training measurements; each row is their median
    workers: int
    fbank_batch: int


SIZES = {
    "tiny": Size(clips=40, clip_seconds=1.0, frames=100, batch=8,
                 cnn_batch=8, steps=3, warmup=1, repeats=1, workers=2, fbank_batch=8),
    "cpu": Size(clips=200, clip_seconds=5.0, frames=500, batch=16,
                cnn_batch=16, steps=20, warmup=3, repeats=3, workers=2, fbank_batch=32),
    "gpu": Size(clips=1500, clip_seconds=10.0, frames=1024, batch=48,
                cnn_batch=96, steps=60, warmup=8, repeats=3, workers=12, fbank_batch=256),
}
NUM_CLASSES = 10


def bench_models(size_name: str, rows: str = "bench_models") -> dict[str, str]:
    """family -> the model of it the size times (each family's `bench_models` / `export_models`)."""
    from .models import all_families

    return {f.name: getattr(f, rows)[size_name] for f in all_families() if size_name in getattr(f, rows)}


SECTIONS = ("features", "distributed", "read", "dump", "train", "processes", "export", "detect", "bootstrap")
BOOTSTRAP_SHAPE = {"tiny": (400, 20, 2), "cpu": (20000, 527, 2), "gpu": (20000, 527, 2)}  # clips, classes, old draws
DETECT_MINUTES = {"tiny": (1.0, 2.0), "cpu": (10.0, 60.0), "gpu": (60.0, 60.0)}  # (timed file, memory file)
TRAIN = {"mixup": 0.5, "mixup_alpha": 10.0, "channels_last": True}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@contextmanager
def _in(folder: Path):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)


def _model_config(name: str) -> dict:
    """A registered model with its family's default settings (pipeline/models)."""
    return {"name": name}


AUGMENT = {"mixup": 0.5, "mixup_alpha": 10.0, "freq_mask": 24}  # time_mask: a fifth of the frames


def workspace_settings(size: "Size", teacher: str = "efficientnet_test", student: str = "ast_test"):
    """The params the benchmark's workspace runs with: the built-in generator at the size's scale."""
    return settings_from({
        "data": {"source": "builtin", "num_classes": NUM_CLASSES, "clips_per_class": size.clips // NUM_CLASSES,
                 "clip_seconds": size.clip_seconds, "split": {"val": 0.2, "test": 0.1}},
        "features": {"target_frames": size.frames, "clips_per_shard": 64},
        "models": {"teacher": _model_config(teacher), "student": _model_config(student)},
        "teacher": "teacher", "student": "student",
        "augment": {**AUGMENT, "time_mask": max(1, size.frames // 5)},
        "train": {"batch_size": size.batch, "num_workers": size.workers},
        "dump": {"batch_size": 2 * size.batch, "num_workers": size.workers},
    }, "the benchmark's settings")


class Results:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, section: str, name: str, value: float, unit: str, detail: str = "",
            runs: list[float] | None = None) -> None:
        self.rows.append({"section": section, "name": name, "value": round(float(value), 3), "unit": unit,
                          "detail": detail, **({"runs": [round(float(r), 3) for r in runs]} if runs else {})})
        print(f"  {section:9s} {name:42s} {value:12.1f} {unit} {detail}", flush=True)

    def value(self, section: str, name: str) -> float:
        return next(r["value"] for r in self.rows if r["section"] == section and r["name"] == name)


def bench_features(size: Size, dev: torch.device, settings, results: Results, cluster: bool = True) -> None:
    """Extraction clips/s (float64 on the CPU, as the store is made by default; float32 and float64 on a GPU), with
    1 and N Dask workers; then the fbank alone, float64 against float32, on waveforms already in memory."""
    runs = [("float64", "cpu", 1, "threads"), ("float64", "cpu", size.workers, "threads"),
            ("float64", "cpu", size.workers, "processes")]
    if dev.type == "cuda":
        runs += [(p, "cuda", size.workers, "threads") for p in ("float32", "float64")]
    if cluster:  # a dask.distributed LocalCluster of 1 and N worker processes
        runs += [("float64", "cpu", 1, "distributed"), ("float64", "cpu", size.workers, "distributed")]
    single = {}  # clips/s of one distributed worker, for the scaling efficiency
    for precision, where, workers, scheduler in runs:
        out = layout.DATA / f"features_{precision}_{where}_{workers}_{scheduler}.zarr"
        cfg = settings.features.model_copy(update={"workers": workers, "device": where, "precision": precision,
                                                   "scheduler": scheduler})
        started = time.perf_counter()
        write_feature_store(layout.MANIFEST, layout.CLASSES, out, cfg, multi_label=False)
        seconds = time.perf_counter() - started
        rate = size.clips / seconds
        detail = f"{size.clips} clips of {size.clip_seconds:g} s, decode + fbank + Zarr write"
        if scheduler == "distributed":
            detail += ", cluster start included"
            if workers == 1:
                single[where] = rate
            elif where in single:
                detail += f"; scaling efficiency {rate / (workers * single[where]):.0%} of {workers}x one worker"
        name = f"{workers} Dask {'distributed workers' if scheduler == 'distributed' else scheduler}"
        results.add("features", f"extract, {precision} fbank on {where}, {name}", rate, "clips/s", detail)
    shutil.move(layout.DATA / f"features_float64_cpu_{size.workers}_threads.zarr", layout.FEATURES)

    # the fbank computation alone, on waveforms already in memory, in each precision
    g = torch.Generator().manual_seed(0)
    waves = [0.1 * torch.randn(int(size.clip_seconds * 16000), generator=g) for _ in range(size.fbank_batch)]
    batch, lengths = pad_batch(waves)
    batch = batch.to(dev)
    for dtype in (torch.float32, torch.float64):
        model = BatchedFbank(dtype=dtype).to(dev)
        with torch.no_grad():
            model(batch, lengths, size.frames)  # warm-up (cuFFT plans, allocator)
            _sync(dev)
            passes = 10 if dev.type == "cuda" else 2
            started = time.perf_counter()
            for _ in range(passes):
                model(batch, lengths, size.frames)
            _sync(dev)
        rate = passes * len(waves) / (time.perf_counter() - started)
        results.add("features", f"fbank alone, {str(dtype).removeprefix('torch.')} on {dev.type}", rate, "clips/s",
                    f"batches of {len(waves)} {size.clip_seconds:g} s clips already on the device, "
                    f"{torch.get_num_threads()} threads")


def _random_plan(store: FeatureStore, batch: int, count: int, seed: int, views: int = 0):
    """`count` random training batches with their augmentation seeds, as an epoch's plan draws them."""
    rng, rows, plan = np.random.default_rng(seed), np.arange(len(store.clip_ids)), []
    while len(plan) < count:
        plan += training_plan(rng, rows, batch, views=views)
    return plan[:count]


def bench_read(size: Size, dev: torch.device, predictions: PredictionStore, results: Results) -> None:
    store = FeatureStore(layout.FEATURES)
    rows = ZarrRows(store, predictions)
    for workers in (0, size.workers):
        source = BatchSource(rows, None, workers, pin_memory=dev.type == "cuda")
        seen = 0
        for i, batch in enumerate(source.batches(_random_plan(store, size.batch, size.warmup + size.steps, 0),
                                                 "clean")):
            if i == size.warmup:
                started = time.perf_counter()
            if i >= size.warmup:
                seen += len(batch["x"])
        results.add("read", f"features + cached predictions, {workers} loader workers",
                    seen / (time.perf_counter() - started), "samples/s",
                    f"random batches of {size.batch} from {len(store.clip_ids)} clips x {size.frames} frames")


def random_checkpoint(name: str, path: Path, classes: list[str], frames: int, bins: int = 128,
                      normalization: dict | None = None, store: FeatureStore | None = None,
                      features: dict | None = None) -> Path:
    """A checkpoint of model `name` with random weights (what the benchmark times does not depend on them): for the
    workspace's feature store when given, else for `classes`, `frames` and `normalization`."""
    cfg = build_model_config(name)
    if store is not None:
        described = trained_on(store)
    else:
        described = {"num_classes": len(classes), "num_frames": frames, "num_mel_bins": bins, "classes": classes,
                     "normalization": normalization, "features": features or {}}
    model = build_model(cfg, described["num_classes"], described["num_frames"], described["num_mel_bins"])
    save_checkpoint(path, model, Checkpoint(role="bench", architecture=name, network=cfg, **described, seed=0,
                                            note="random weights, made by cmkd bench"))
    return path


def build_model_config(name: str) -> dict:
    from .models import config_class

    return config_class(name).model_validate(_model_config(name)).model_dump()


def bench_dump(size: Size, dev: torch.device, settings, teacher: str, results: Results) -> PredictionStore:
    store, run = FeatureStore(layout.FEATURES), Run()
    checkpoint = random_checkpoint(teacher, layout.checkpoint(layout.labels_model(settings.teacher), run),
                                   store.classes, store.num_frames, store.num_mel_bins, store=store)
    dump(settings, "forward", run)  # warm-up run
    shutil.rmtree(layout.predictions("forward", run))
    started = time.perf_counter()
    dump(settings, "forward", run)
    batch, workers = settings.dump.batch_size, settings.dump.num_workers
    results.add("dump", f"teacher predictions, {teacher}", len(store.clip_ids) / (time.perf_counter() - started),
                "clips/s", f"batch {batch}, {workers} loader workers, read + forward + Zarr write, fixed costs "
                "included (checkpoint hash and load, worker start)")
    out = layout.DATA / f"predictions_{teacher}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    layout.predictions("forward", run).rename(out)

    # the dump's loop alone (the loader and the teacher's forward) once it runs: what a large dataset sees
    model, _ = load_checkpoint(checkpoint, dev)
    sequential = inference_plan(np.arange(len(store.clip_ids)), batch)
    specs = (sequential * (1 + (size.warmup + size.steps) // len(sequential)))[: size.warmup + size.steps]
    source = BatchSource(ZarrRows(store), None, workers, pin_memory=dev.type == "cuda")
    seen = 0
    for i, logits in enumerate(predict_batches(model, source, specs, store.normalization)):
        if i == size.warmup:
            _sync(dev)
            started = time.perf_counter()
        seen += len(logits) if i >= size.warmup else 0
    _sync(dev)
    results.add("dump", f"teacher predictions, {teacher}, steady state", seen / (time.perf_counter() - started),
                "clips/s", f"batch {batch}, {workers} loader workers, read + forward, after {size.warmup} "
                "batches")
    return PredictionStore(out)


@dataclass
class TrainVariant:
    """One way of feeding a student: its (model, optimizer, scheduler), a fresh iterable of batches, its teaching."""
    step: tuple
    batches: object   # () -> batches
    teaching: object


def bench_train(size: Size, dev: torch.device, settings, student: str, teacher: str, predictions: PredictionStore,
                compile_step: bool, results: Results) -> None:
    """Every way of feeding the student, timed `size.repeats` times in interleaved rounds (so that drift in the
    machine's speed hits them alike); each row is the median, with the range in its detail."""
    store = FeatureStore(layout.FEATURES)
    batch_size = size.cnn_batch if family(student).kind == "cnn" else size.batch
    variants = train_variants(size, dev, settings, store, student, teacher, predictions, batch_size, compile_step)
    speeds = {name: [] for name in variants}
    compile_seconds = None
    for _ in range(size.repeats):
        for name, variant in variants.items():
            speed, warmup_seconds = timed_steps(size, dev, store, variant)
            speeds[name].append(speed)
            if name == "compiled pure step" and compile_seconds is None:
                compile_seconds = warmup_seconds
    median = {name: float(np.median(v)) for name, v in speeds.items()}
    details = train_details(median, teacher, batch_size, size, dev, compile_seconds)
    for name, value in median.items():
        spread = f"; median of {size.repeats}, {min(speeds[name]):.1f} to {max(speeds[name]):.1f}" \
            if size.repeats > 1 else ""
        results.add("train", f"{student} student: {name}", value, "samples/s", details[name] + spread,
                    runs=speeds[name])


def train_variants(size: Size, dev: torch.device, settings, store: FeatureStore, student: str, teacher: str,
                   predictions: PredictionStore, batch_size: int, compile_step: bool) -> dict[str, TrainVariant]:
    """name -> variant: the pure step on one resident batch (the ceiling), the cached path through the loader and
    resident in memory, the online teacher; with `compile_step` the same compiled."""
    classes, frames, bins = len(store.classes), store.num_frames, store.num_mel_bins
    augmenter = Augmenter(settings.augment, frames, bins, store.indices("train"))
    pin, steps = dev.type == "cuda", size.warmup + size.steps

    def new_student(compiled: bool):
        """One student per mode, shared by its variants and rounds: a compiled one is compiled once."""
        model = build_model(_model_config(student), classes, frames, bins).to(dev).train()
        step_model = for_training(model, dev, settings.train.model_copy(update={"compile": compiled}))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
        return step_model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    def plan():
        return _random_plan(store, batch_size, steps, 1)

    task = SingleLabel()
    cached = CachedTeacher(predictions, np.arange(len(store.clip_ids)), 1.0, task)
    loader = BatchSource(ZarrRows(store, predictions), augmenter, size.workers, pin_memory=pin)
    loader_features = BatchSource(ZarrRows(store), augmenter, size.workers, pin_memory=pin)
    # train.resident: the stores in device memory, batches gathered there (pipeline/data/resident.py)
    resident = BatchSource(ResidentRows(store, dev, predictions), augmenter)
    resident_features = BatchSource(ResidentRows(store, dev), augmenter)
    on_device = next(iter(resident.batches(plan()[:1], "clean")))  # one batch, already on the device
    teacher_model = build_model(_model_config(teacher), classes, frames, bins).to(dev).eval()
    teacher_model = for_training(teacher_model, dev, settings.train)  # channels-last for a CNN teacher, as trained
    online = OnlineTeacher(teacher_model, {}, 1.0, task)
    eager = new_student(False)
    variants = {
        "pure step (ceiling)": TrainVariant(eager, lambda: [on_device] * steps, cached),
        "cached path": TrainVariant(eager, lambda: loader.batches(plan(), "clean"), cached),
        "cached path, resident stores": TrainVariant(eager, lambda: resident.batches(plan(), "clean"), cached),
        f"online teacher ({teacher})": TrainVariant(eager, lambda: loader_features.batches(plan()), online),
        f"online teacher ({teacher}), resident features": TrainVariant(
            eager, lambda: resident_features.batches(plan()), online),
    }
    if compile_step:
        compiled = new_student(True)
        variants.update({
            "compiled pure step": TrainVariant(compiled, lambda: [on_device] * steps, cached),
            "compiled, cached path": TrainVariant(compiled, lambda: loader.batches(plan(), "clean"), cached),
            "compiled, cached path, resident stores": TrainVariant(
                compiled, lambda: resident.batches(plan(), "clean"), cached),
            f"compiled, online teacher ({teacher})": TrainVariant(
                compiled, lambda: loader_features.batches(plan()), online),
        })
    return variants


def timed_steps(size: Size, dev: torch.device, store: FeatureStore, variant: TrainVariant) -> tuple[float, float]:
    """(samples/s over the timed steps, seconds of the untimed warm-up steps)."""
    model, optimizer, scheduler = variant.step
    seen, warm_started = 0, time.perf_counter()
    for i, batch in enumerate(variant.batches()):
        if i == size.warmup:
            _sync(dev)
            warmup_seconds = time.perf_counter() - warm_started
            started = time.perf_counter()
        x, y = to_device(batch, store.normalization, dev)
        train_step(model, optimizer, scheduler, x, y, variant.teaching.targets(batch, x, y), 0.5, SingleLabel())
        seen += len(x) if i >= size.warmup else 0
    _sync(dev)
    return seen / (time.perf_counter() - started), warmup_seconds


def train_details(median: dict, teacher: str, batch_size: int, size: Size, dev: torch.device,
                  compile_seconds: float | None) -> dict[str, str]:
    """Each row's detail: what it is relative to (the pure step, the online teacher)."""
    def ratio_to(name: str, other: str, what: str) -> str:
        return f"{median[name] / median[other]:.1%} of the {what}"

    def faster(name: str, other: str, what: str) -> str:
        return f"{what} is {median[name] / median[other]:.2f}x faster"

    online, online_resident = f"online teacher ({teacher})", f"online teacher ({teacher}), resident features"
    details = {
        "pure step (ceiling)": f"batch {batch_size}, tensors on {dev.type}",
        "cached path": ratio_to("cached path", "pure step (ceiling)", "pure step") + f"; {size.workers} loader workers",
        "cached path, resident stores": ratio_to("cached path, resident stores", "pure step (ceiling)", "pure step"),
        online: faster("cached path", online, "cached path"),
        online_resident: faster("cached path, resident stores", online_resident, "resident cached path"),
    }
    if "compiled pure step" in median:
        compiled_online = f"compiled, online teacher ({teacher})"
        details.update({
            "compiled pure step": f"{median['compiled pure step'] / median['pure step (ceiling)']:.2f}x eager; first "
                                  f"{size.warmup} steps incl. compile took {compile_seconds:.0f} s",
            "compiled, cached path": ratio_to("compiled, cached path", "compiled pure step", "compiled pure step"),
            "compiled, cached path, resident stores": ratio_to("compiled, cached path, resident stores",
                                                               "compiled pure step", "compiled pure step"),
            compiled_online: faster("compiled, cached path", compiled_online, "compiled cached path"),
        })
    return details


def bench_processes(size: Size, dev: torch.device, settings, results: Results, teacher: str) -> None:
    """The AST student through the real training stage (`cmkd train student`), in 1 and 2 processes: torchrun with
    DistributedDataParallel (gloo on the CPU, NCCL on GPUs), the same global batch. Samples/s of the whole run
    (every process), the median over its epochs after the first."""
    import subprocess
    import sys

    run = Run()
    shutil.rmtree(layout.predictions("forward", run), ignore_errors=True)
    shutil.copytree(layout.DATA / f"predictions_{teacher}.zarr", layout.predictions("forward", run))
    counts = [1, 2] if dev.type != "cuda" else [1] + ([2] if torch.cuda.device_count() >= 2 else [])
    for count in counts:
        params = settings.as_params()
        params["models"]["student"]["epochs"] = 3
        params["train"].update(batch_size=size.batch // count, num_workers=0)
        params["distributed"].update(nproc_per_node=count)
        Path("bench_params.yaml").write_text(json.dumps(params))  # JSON is YAML
        subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "student", "-p", "bench_params.yaml"],
                       check=True, stdout=subprocess.DEVNULL)
        history = read_checkpoint(layout.checkpoint(layout.student_model("forward"), run))[2].history
        rate = float(np.median([h["train/samples_per_s"] for h in history[1:]]))
        student = params["models"]["student"]["name"]
        results.add("train", f"{student} student, real stage, {count} process{'es' if count > 1 else ''}", rate,
                    "samples/s", f"global batch {size.batch}, {'DDP, ' if count > 1 else ''}median of epochs 2-3")
    if dev.type == "cuda" and len(counts) == 1:
        print("  train     2 processes: not measured (one GPU)")


def bench_export(size_name: str, results: Results, frames: int = 1024) -> None:
    """Deployment on the CPU, one 10 s clip a call (the median of 10): each model exported to ONNX taking audio
    (the fbank inside) and taking fbank, each checked against the pipeline, timed in onnxruntime next to eager
    PyTorch on the fbank (the fbank's own time then comes on top: `features` rows)."""
    from .export import export, onnx_latency

    wave = (0.1 * np.random.default_rng(0).standard_normal((1, 160_000))).astype(np.float32)  # 10 s at 16 kHz
    features = {"sample_rate": 16000, "num_mel_bins": 128, "frame_shift_ms": 10.0, "frame_length_ms": 25.0,
                "target_frames": frames}
    for name in bench_models(size_name, "export_models").values():
        path = random_checkpoint(name, Path(f"export_{name}.pt"), [f"c{i}" for i in range(NUM_CLASSES)], frames,
                                 normalization={"mean": -4.27, "std": 4.57}, features=features)
        model, meta = load_checkpoint(path)
        fbank_in = (np.random.default_rng(0).normal(-5, 4, (1, frames, 128))).astype(np.float32)
        for kind, x in (("waveform", wave), ("features", fbank_in)):
            report = export(path, Path(f"export_{name}_{kind}.onnx"), "onnx", input_kind=kind)
            seconds = onnx_latency(Path(report["out"]), x)
            results.add("export", f"{name} ONNX, {kind} in (onnxruntime, CPU), 10 s clip", seconds * 1000, "ms/clip",
                        f"{frames} frames; max abs logit difference vs the pipeline "
                        f"{report['max abs logit difference']:.2g}")
        x = meta.input_normalization(torch.from_numpy(fbank_in))
        with torch.no_grad():
            model(x)
            times = []
            for _ in range(10):
                started = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - started)
        results.add("export", f"{name} PyTorch eager, features in (CPU), 10 s clip", float(np.median(times)) * 1000,
                    "ms/clip", f"{frames} frames, {torch.get_num_threads()} threads")


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
    family's model (random weights; ESC-50's 50 classes, 512-frame windows every 0.5 s) through the streamed
    timeline, and of the waveform ONNX export run window by window in onnxruntime (each window's fbank computed
    inside the graph again); then the peak memory of the whole `cmkd detect` process on a longer file."""
    import subprocess
    import sys

    from .events.timeline import Scorer
    from .export import export

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
        scorer = Scorer(path, hop=hop)
        started = time.perf_counter()
        list(scorer.timelines([recording]))
        rtf = timed_minutes * 60 / (time.perf_counter() - started)
        results.add("detect", f"{name}, streamed timeline", rtf, "x real time",
                    f"{timed_minutes:g} min file, {frames}-frame windows every {hop:g} s, "
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


def multi_label_scores(clips: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two models' logits and long-tailed labels at a tagging set's shape: class c's prior falls as 1 / (c + 1)
    (AudioSet's evaluation set: a few classes on thousands of clips, most on 50 to 100), and the models' scores
    lean toward the labels, one more than the other."""
    rng = np.random.default_rng(seed)
    prior = np.minimum(0.3, 2.0 / (np.arange(classes) + 1.0) + 50.0 / clips)
    labels = (rng.random((clips, classes)) < prior).astype(np.float32)
    a, b = (rng.normal(size=(clips, classes)).astype(np.float32) + skill * labels for skill in (1.5, 1.2))
    return a, b, labels


def bench_bootstrap(size_name: str, results: Results) -> None:
    """The report's paired bootstrap (pipeline/evaluation/statistics.py) of student - baseline mAP on one run, with
    the report's resamples, against the way it was done before: each draw's rows copied and each model's mAP
    recomputed class by class with scikit-learn (timed on a few draws; the same draw gives the same mAP both ways,
    tests/test_report.py)."""
    from sklearn.metrics import average_precision_score

    from .evaluation.statistics import RESAMPLES, Paired, difference
    from .task import MultiLabel

    clips, classes, old_draws = BOOTSTRAP_SHAPE[size_name]
    a, b, labels = multi_label_scores(clips, classes)
    task, resamples = MultiLabel(), RESAMPLES["multi-label"]
    shape = f"{clips:,} clips x {classes} classes, one run, two models"
    started = time.perf_counter()
    difference([Paired(a, b, labels)], task)
    weighted = time.perf_counter() - started
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(old_draws):
        rows = rng.integers(clips, size=clips)
        for z in (a, b):
            y, s = labels[rows], z[rows]
            np.mean([average_precision_score(y[:, c], s[:, c]) for c in range(classes) if y[:, c].any()])
    copied = (time.perf_counter() - started) / old_draws
    results.add("bootstrap", "paired difference, weighted draws (this code)", weighted, "s",
                f"{shape}, {resamples} resamples, 95 % interval included")
    results.add("bootstrap", "per draw, weighted draws (this code)", 1000 * weighted / resamples, "ms", shape)
    results.add("bootstrap", "per draw, copied rows + scikit-learn per class (former)", 1000 * copied, "ms",
                f"{shape}, mean of {old_draws} draws")
    results.add("bootstrap", "former / this code, per draw", copied * resamples / weighted, "x", shape)


def run_bench(size_name: str, out: Path | None = None, workdir: Path | None = None, compile_step: bool = False,
              sections: tuple[str, ...] = SECTIONS, overrides: dict | None = None) -> dict:
    size = replace(SIZES[size_name], **(overrides or {}))
    dev = default_device()
    torch.manual_seed(0)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = Results()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="cmkd-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"cmkd bench: size {size_name} on {_device_name(dev)}, workspace {root}", flush=True)
    try:
        with _in(root):
            settings = workspace_settings(size)
            if set(sections) - {"export", "detect", "bootstrap"}:  # the others read the feature store this one writes
                prepare(settings)
                bench_features(size, dev, settings, results, cluster="distributed" in sections)
            names = list(bench_models(size_name).values())
            predictions = {}
            for teacher in names:
                if "dump" in sections or "train" in sections or "read" in sections:
                    predictions[teacher] = bench_dump(size, dev, settings, teacher, results)
            if "read" in sections:
                bench_read(size, dev, predictions[names[0]], results)
            if "train" in sections:  # each family's model the student of the next family's
                for student, teacher in zip(names, names[1:] + names[:1]):
                    bench_train(size, dev, settings, student, teacher, predictions[teacher], compile_step, results)
                    if dev.type == "cuda":  # the finished student's models and resident stores
                        torch.cuda.empty_cache()
            if "processes" in sections:
                bench_processes(size, dev, settings, results, names[-1])
            if "export" in sections:
                bench_export(size_name, results)
            if "detect" in sections:
                bench_detect(size_name, results)
            if "bootstrap" in sections:
                bench_bootstrap(size_name, results)
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)
    report = {"size": size_name, "config": asdict(size), "device": _device_name(dev), "torch": torch.__version__,
              "cpu_count": os.cpu_count(), "platform": platform.platform(), "results": results.rows}
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
    return report


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def print_table(report: dict, console: Console | None = None) -> None:
    table = Table(title=f"cmkd bench, size {report['size']}, {report['device']}, torch {report['torch']}")
    for column in ("section", "measurement", "value", "unit", "detail"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in report["results"]:
        table.add_row(r["section"], r["name"], f"{r['value']:,.1f}", r["unit"], r["detail"])
    (console or Console()).print(table)
