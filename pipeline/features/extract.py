"""Stages `features` and `frontend@<name>`: a front-end's frames (pipeline/features/frontend.py: the Kaldi fbank of
params `features`, or a model family's own) for every clip, computed in parallel with Dask, written to a sharded Zarr
store (its layout: pipeline/stores/features.py), block by block, resumably (pipeline/stores/writer.py).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import dask
import numpy as np
import torch
import zarr
from dask.callbacks import Callback
from rich.progress import Progress

from .. import layout
from ..manifest import Clip, read_classes, read_manifest
from ..provenance import code_version
from ..stores.features import VERSION, create_arrays, write_block
from ..stores.schema import schema
from ..stores.writer import ResumableStore, block_ranges
from .audio import AudioError, load_audio
from .fbank import KaldiFbank
from .frontend import DEFAULT, FrontEnd, frontend_named
from .length import crop_report, crop_warning, resolved, seconds_of


def extract(settings, name: str = DEFAULT) -> None:
    """The stage: data/raw -> the front-end's store (data/features.zarr for params `features`' fbank,
    data/frontends/<name>.zarr for another) and its content digest in results/stores/<name>.json (what the stages
    that read the store depend on, through the code records); results/skipped.csv for the default store."""
    frontend = default_frontend(settings.features) if name == DEFAULT else \
        frontend_named(name, precision=settings.features.precision)
    out = layout.store(name)
    write_feature_store(layout.MANIFEST, layout.CLASSES, out, settings.features, settings.data.multi_label,
                        skipped_list=layout.SKIPPED if name == DEFAULT else None,
                        validation_fraction=settings.data.split.val, frontend=frontend)
    attrs = zarr.open_group(out, mode="r").attrs
    record = layout.store_record(name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"frontend": name, "store": str(out), "content_sha256": attrs["content_sha256"],
                                  "target_frames": attrs["feature_params"]["target_frames"]}, indent=1) + "\n")


def default_frontend(cfg) -> FrontEnd:
    """The Kaldi fbank params `features` describe (the AST recipe's, data/features.zarr)."""
    return KaldiFbank(cfg.sample_rate, cfg.num_mel_bins, cfg.frame_shift_ms, cfg.frame_length_ms, cfg.precision)


def clip_audio(path: Path, frontend: FrontEnd, target_frames: int) -> torch.Tensor:
    """The clip's waveform at the front-end's rate, decoded as far as its window needs (the fbank: 4x, the recipe's
    mean being that of the decoded part; a longer clip is cropped anyway)."""
    return load_audio(path, frontend.sample_rate, max_seconds=frontend.decoded(target_frames) / frontend.sample_rate,
                      min_samples=max(1, frontend.samples_for(1)))


def clip_features(wave: torch.Tensor, frontend: FrontEnd, target_frames: int) -> tuple[np.ndarray, int]:
    """float16 [target_frames, bins] features of one waveform as the store holds them, and its frames before
    padding or cropping."""
    feats, frames = frontend.clips([wave[: frontend.decoded(target_frames)]], target_frames, torch.device("cpu"))
    return feats[0].float().numpy().astype(np.float16), int(frames[0])


def load_block(clips: list[Clip], frontend: FrontEnd,
               target_frames: int) -> tuple[list[torch.Tensor | None], list[str]]:
    """Each clip's waveform, or None and the reason (its AudioError) when it cannot be used."""
    waves, reasons = [], []
    for clip in clips:
        try:
            waves.append(clip_audio(clip.path, frontend, target_frames))
            reasons.append("")
        except AudioError as e:
            waves.append(None)
            reasons.append(str(e))
    return waves, reasons


SUB_BATCH = 16  # clips transformed at once (a block's spectra in float64 would take hundreds of MB at 1024 frames)


def fbank_device(choice: str) -> torch.device:
    """`features.device`: where the fbank runs (auto: the GPU when there is one)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("features.device is cuda, but torch sees no GPU here")
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu")


def block_features(clips: list[Clip], cfg, frontend: FrontEnd,
                   device: torch.device) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features [clips, target_frames, bins] float16, frames before padding or cropping, and the reason each clip
    was skipped ("" if it was not; a skipped clip's features are zeros) for one block."""
    waves, reasons = load_block(clips, frontend, cfg.target_frames)
    feats = np.zeros((len(clips), cfg.target_frames, frontend.bins), dtype=np.float16)
    frames = np.zeros(len(clips), dtype=np.int32)
    good = [i for i, wave in enumerate(waves) if wave is not None]
    for start in range(0, len(good), SUB_BATCH):
        part = good[start : start + SUB_BATCH]
        part_feats, part_frames = frontend.clips([waves[i] for i in part], cfg.target_frames, device)
        feats[part], frames[part] = part_feats.half().cpu().numpy(), part_frames.cpu().numpy()
    return feats, frames, reasons


def fbank_name(device: torch.device, frontend: FrontEnd) -> str:
    """Which front-end computed the features, as the store records it."""
    what = "fbank.BatchedFbank" if frontend.name == DEFAULT else frontend.name
    return f"pipeline.features.{what} ({frontend.precision}) on {device.type}"


def compute_on_cluster(tasks: list, cfg, advance, say) -> list:
    """The tasks on a dask.distributed cluster: a LocalCluster of `features.workers` single-threaded worker
    processes, or the running scheduler at `features.address` (started by `dask scheduler` / `dask worker`,
    dask-jobqueue, dask-kubernetes, ...). Each worker writes its own shards to the store, which must be on a file
    system every worker sees; only block indices and the small results pass through the scheduler."""
    environ = dict(os.environ)  # LocalCluster sets OMP_NUM_THREADS=1 and others for its workers in os.environ itself
    try:
        return _compute_on_cluster(tasks, cfg, advance, say)
    finally:
        os.environ.clear()
        os.environ.update(environ)


def _compute_on_cluster(tasks: list, cfg, advance, say) -> list:
    from distributed import Client, LocalCluster, as_completed

    cluster = None if cfg.address else LocalCluster(n_workers=cfg.workers, threads_per_worker=1, processes=True,
                                                    dashboard_address=":0")  # any free port
    with Client(cfg.address or cluster) as client:
        where = cfg.address or f"a local cluster of {cfg.workers} workers"
        say(f"features on {where}; dashboard {client.dashboard_link}")
        futures = client.compute(tasks)
        order = {future.key: i for i, future in enumerate(futures)}
        results = [None] * len(futures)
        for future in as_completed(futures):
            results[order[future.key]] = future.result()  # raises the task's own error
            advance()
    if cluster is not None:
        cluster.close()
    return results


def feature_params(cfg, frontend: FrontEnd) -> dict:
    """What the store's values depend on besides the clips: the front-end's parameters and the window."""
    if frontend.name == DEFAULT:
        return cfg.fbank_params()  # (as the default store has always recorded them)
    return {**frontend.params(), "target_frames": cfg.target_frames}


def fingerprint(manifest: Path, classes: list[str], cfg, multi_label: bool, frontend: FrontEnd) -> str:
    """What the features' values depend on. Not features.on_error: it decides which clips are used, not how a
    shard is computed, and a shard is written only when both modes would write it alike (see _write_block), so
    switching it keeps the finished shards."""
    h = hashlib.sha256(Path(manifest).read_bytes())
    h.update(json.dumps([classes, feature_params(cfg, frontend), multi_label, cfg.precision]).encode())
    return h.hexdigest()


def clips_fingerprint(manifest: Path, classes: list[str], multi_label: bool) -> str:
    """The clips a store holds (its manifest, classes and task), whatever the front-end: the stores of one dataset
    share it, so that a cache dumped from a teacher's store serves a student reading another."""
    h = hashlib.sha256(Path(manifest).read_bytes())
    h.update(json.dumps([classes, multi_label]).encode())
    return h.hexdigest()


def _write_block(partial: Path, block: int, start: int, clips: list[Clip], cfg,
                 frontend: FrontEnd) -> tuple[list[tuple[str, str]], str]:
    """One Dask task: fbank for one shard's clips, written with one call, with each clip's sums for the statistics.
    It runs wherever Dask puts it (a thread, a process, a worker of a cluster) and writes its shard itself.

    Returns the shard's unusable clips as (path, problem), and which fbank computed it (decided where it runs, so
    each worker of a cluster uses its own GPU). With features.on_error: fail a shard holding an unusable clip is
    not written (every other shard still is, so one run lists every bad clip and a re-run redoes only those).
    """
    torch.set_num_threads(1)  # parallelism comes from Dask workers, not intra-op threads
    device = fbank_device(cfg.device)
    used = fbank_name(device, frontend)
    group = zarr.open_group(partial, mode="r+")
    block_feats, frames, reasons = block_features(clips, cfg, frontend, device)
    bad = [(str(clip.path), reason.removeprefix(f"{clip.path}: ")) for clip, reason in zip(clips, reasons) if reason]
    if bad and cfg.on_error == "fail":
        return bad, used
    write_block(group, start, block_feats, frames, reasons)
    digest = hashlib.sha256(block_feats.tobytes() + frames.tobytes() + "\n".join(reasons).encode()).hexdigest()
    ResumableStore.mark_done(group, block, digest)
    return bad, used


class _RichDaskProgress(Callback):
    """Advance a rich progress bar as Dask finishes tasks."""

    def __init__(self, progress: Progress, task):
        super().__init__()
        self.progress, self.task = progress, task

    def _posttask(self, key, result, dsk, state, worker_id):
        self.progress.advance(self.task)


def write_feature_store(manifest: Path, classes_file: Path, out: Path, cfg, multi_label: bool,
                        skipped_list: Path | None = None, validation_fraction: float = 0.15,
                        frontend: FrontEnd | None = None) -> None:
    """Write the feature store at `out` from a manifest; with features.on_error: skip, clips that cannot be used
    are left out of every split, and `skipped_list` (a CSV: clip_id, path, reason) names them. The window's length
    (`target_frames`, or `auto` from the clips' durations) and what it crops are said and recorded (length.py)."""
    classes = read_classes(classes_file)
    clips = read_manifest(manifest, classes, multi_label)
    frontend = frontend or default_frontend(cfg)
    seconds = seconds_of([clip.path for clip in clips], 4 * cfg.workers)
    requested, cfg = cfg, resolved(cfg, seconds, frontend)
    input_length = crop_report(seconds, requested, cfg.target_frames, frontend)
    if warning := crop_warning(input_length):
        print(f"warning: {warning}")
    n, shard = len(clips), cfg.clips_per_shard
    blocks = block_ranges(n, shard)
    writer = ResumableStore(out, fingerprint(manifest, classes, cfg, multi_label, frontend), len(blocks))
    group, fresh = writer.open()
    if fresh:
        create_arrays(group, clips, classes, cfg.target_frames, frontend.bins, shard)
    results = compute_blocks(writer, group, clips, blocks, cfg, frontend, fresh)
    bad = [clip for found, _ in results for clip in found]
    used = sorted({fbank for _, fbank in results} | set(group.attrs.get("_fbank", []))) or [
        fbank_name(fbank_device(cfg.device), frontend)]  # nothing computed in this run: what it would use
    group.attrs["_fbank"] = used  # a resumed run adds to what the shards before it used
    if bad and cfg.on_error == "fail":
        done = int(group["_done"][:].sum())
        raise AudioError(f"{manifest}: {len(bad)} of {n} clips cannot be used (features.on_error: fail); "
                         f"{done} of {len(blocks)} shards are written and kept for the re-run. Fix or remove these "
                         f"files, or set features.on_error: skip to leave them out:\n" + problem_table(bad))
    source = Path(manifest).with_name("source.json")
    group.attrs.update({
        **schema("features", VERSION), "classes": classes, "multi_label": multi_label,
        "validation_fraction": validation_fraction,  # the share of whole groups a fold run validates on, if it must
        "feature_params": feature_params(cfg, frontend), "input_length": input_length,
        "clips_fingerprint": clips_fingerprint(manifest, classes, multi_label),
        "fbank": used[0] if len(used) == 1 else used,  # so that a store says how it was made
        "fingerprint": writer.fingerprint, "content_sha256": writer.content_digest(group, writer.fingerprint),
        "manifest": str(manifest),
        # where prepare read it from (data/raw/source.json): what a checkpoint records
        "dataset": json.loads(source.read_text()) if source.is_file() else {},
        "created_by": "cmkd features", "code": code_version()})
    reasons = group["skipped"][:]
    if skipped_list is not None:
        write_skipped(skipped_list, [(clip, reason) for clip, reason in zip(clips, reasons) if reason])
    if (reasons != "").all():
        raise AudioError(f"{manifest}: every clip was skipped (see {skipped_list})")
    del group.attrs["_fbank"]
    writer.commit(group)


def compute_blocks(writer: ResumableStore, group, clips: list[Clip], blocks: list, cfg, frontend: FrontEnd,
                   fresh: bool) -> list:
    """Every pending block computed and written by the scheduler `features.scheduler` names; per block, its
    unusable clips and which fbank computed it."""
    pending = writer.pending(group)
    # named by block, so Dask's order is the same on every run (random names made it vary from run to run)
    tasks = [dask.delayed(_write_block, pure=False)(writer.partial, b, blocks[b][0], clips[slice(*blocks[b])], cfg,
                                                    frontend, dask_key_name=f"features-block-{b:08d}")
             for b in pending]
    threads = torch.get_num_threads()
    try:
        with writer.writing(), Progress() as progress:
            resumed = f", {len(blocks) - len(pending)} shards kept from an interrupted run" if not fresh else ""
            bar = progress.add_task(f"{frontend.name} ({cfg.precision}), {len(clips)} clips, {cfg.target_frames} frames"
                                    f"{resumed}", total=len(tasks))
            if cfg.scheduler == "distributed":
                return compute_on_cluster(tasks, cfg, lambda: progress.advance(bar), progress.console.print)
            with _RichDaskProgress(progress, bar):
                return list(dask.compute(*tasks, scheduler=cfg.scheduler, num_workers=cfg.workers))
    finally:
        torch.set_num_threads(threads)


def problem_table(problems: list[tuple[str, str]]) -> str:
    """Plain text, one line per file: the file and its problem (`cmkd check` prints the same rows as a table)."""
    width = max(len(path) for path, _ in problems)
    return "\n".join(f"  {path:{width}s}  {problem}" for path, problem in sorted(problems))


def write_skipped(path: Path, skipped: list[tuple[Clip, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["clip_id", "path", "reason"])
        writer.writerows([clip.clip_id, str(clip.path), reason] for clip, reason in skipped)
    if skipped:
        print(f"{len(skipped)} clips skipped (features.on_error: skip), listed in {path}")
