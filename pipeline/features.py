"""Stage `features`: Kaldi fbank for every clip, computed in parallel with Dask, written to a sharded Zarr store.

Store layout (one row per clip, in manifest order):
  features   float16 [clips, frames, mel_bins]  raw log-mel, chunk = one clip, shard = `clips_per_shard` clips
  labels     uint8   [clips, classes]           multi-hot
  clip_ids   str     [clips]
  split      str     [clips]                    the manifest's train / val / test
  fold       int16   [clips]                    the dataset's own fold, 0 if none (runs foldK, pipeline/runs.py)
  num_frames int32   [clips]                    frames before padding or cropping
  clip_stats float64 [clips, 2]                 sum and sum of squares of each clip's features, so that any run's
                                                normalisation statistics come from its own training clips
  attrs: classes, multi_label, feature params, fbank (which implementation: Kaldi per clip on the CPU, batched on a GPU), fingerprint (of manifest, classes and params), created_by
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import dask
import numpy as np
import torch
import torchaudio
import zarr
from dask.callbacks import Callback
from rich.progress import Progress

from .audio import load_audio
from .batched_fbank import BatchedFbank, pad_batch
from .manifest import Clip, read_classes, read_manifest
from .zarr_writer import ResumableStore, block_ranges

FBANK_PARAM_KEYS = ("sample_rate", "num_mel_bins", "frame_shift_ms", "frame_length_ms", "target_frames")


def fbank(wave: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128,
          frame_shift_ms: float = 10.0, frame_length_ms: float = 25.0) -> torch.Tensor:
    """The AST/PSLA recipe: mean-subtracted waveform, Kaldi fbank with HTK-compatible mel, Hanning window."""
    wave = wave - wave.mean()
    return torchaudio.compliance.kaldi.fbank(
        wave.unsqueeze(0), htk_compat=True, sample_frequency=sample_rate, use_energy=False,
        window_type="hanning", num_mel_bins=num_mel_bins, dither=0.0,
        frame_shift=frame_shift_ms, frame_length=frame_length_ms,
    )


def pad_or_crop(feats: torch.Tensor, target_frames: int) -> torch.Tensor:
    """Zero-pad at the end or crop to `target_frames` rows (as the AST dataloader does)."""
    n = feats.shape[0]
    if n < target_frames:
        return torch.nn.functional.pad(feats, (0, 0, 0, target_frames - n))
    return feats[:target_frames]


def clip_features(clip: Clip, cfg: dict) -> tuple[np.ndarray, int]:
    wave = load_audio(clip.path, cfg["sample_rate"])
    feats = fbank(wave, cfg["sample_rate"], cfg["num_mel_bins"], cfg["frame_shift_ms"], cfg["frame_length_ms"])
    return pad_or_crop(feats, cfg["target_frames"]).numpy().astype(np.float16), feats.shape[0]


def fbank_device(cfg: dict) -> torch.device | None:
    """`features.fbank`: where the batched fbank runs, or None for torchaudio's Kaldi fbank one clip at a time.

    auto: the batched fbank on the GPU when there is one, else Kaldi on the CPU; batched: on the GPU if there is
    one, else on the CPU; kaldi: always the reference implementation.
    """
    choice, gpu = cfg.get("fbank", "auto"), torch.cuda.is_available()
    if choice not in ("auto", "batched", "kaldi"):
        raise ValueError(f"features.fbank must be auto, batched or kaldi, got {choice!r}")
    if choice == "kaldi" or (choice == "auto" and not gpu):
        return None
    return torch.device("cuda" if gpu else "cpu")


@lru_cache(maxsize=None)
def _batched_fbank(device: str, sample_rate: int, num_mel_bins: int, shift: float, length: float) -> BatchedFbank:
    return BatchedFbank(sample_rate, num_mel_bins, shift, length).to(device)


def block_features(clips: list[Clip], cfg: dict, device: torch.device | None) -> tuple[np.ndarray, np.ndarray]:
    """Features [clips, target_frames, mel_bins] float16 and frames before padding or cropping, for one block."""
    if device is None:  # the reference implementation, one clip at a time
        feats, frames = zip(*(clip_features(clip, cfg) for clip in clips))
        return np.stack(feats), np.array(frames, dtype=np.int32)
    waves, lengths = pad_batch([load_audio(clip.path, cfg["sample_rate"]) for clip in clips])
    model = _batched_fbank(str(device), cfg["sample_rate"], cfg["num_mel_bins"], cfg["frame_shift_ms"],
                           cfg["frame_length_ms"])
    with torch.no_grad():
        feats, frames = model(waves.to(device, non_blocking=True), lengths, cfg["target_frames"])
    return feats.half().cpu().numpy(), frames.cpu().numpy().astype(np.int32)


def fingerprint(manifest: Path, classes: list[str], cfg: dict, multi_label: bool) -> str:
    h = hashlib.sha256(Path(manifest).read_bytes())
    h.update(json.dumps([classes, {k: cfg[k] for k in FBANK_PARAM_KEYS}, multi_label]).encode())
    return h.hexdigest()


def _write_block(partial: Path, block: int, start: int, clips: list[Clip], cfg: dict,
                 device: torch.device | None) -> None:
    """One Dask task: fbank for one shard's clips, written with one call, with each clip's sums for the statistics."""
    torch.set_num_threads(1)  # parallelism comes from Dask workers, not intra-op threads
    group = zarr.open_group(partial, mode="r+")
    block_feats, frames = block_features(clips, cfg, device)
    end = start + len(clips)
    group["features"][start:end] = block_feats
    group["num_frames"][start:end] = frames
    as64 = block_feats.astype(np.float64)
    group["clip_stats"][start:end] = np.stack([as64.sum(axis=(1, 2)), (as64**2).sum(axis=(1, 2))], axis=1)
    ResumableStore.mark_done(group, block)


class _RichDaskProgress(Callback):
    """Advance a rich progress bar as Dask finishes tasks."""

    def __init__(self, progress: Progress, task):
        super().__init__()
        self.progress, self.task = progress, task

    def _posttask(self, key, result, dsk, state, worker_id):
        self.progress.advance(self.task)


def extract_features(manifest: Path, classes_file: Path, out: Path, cfg: dict, multi_label: bool) -> None:
    classes = read_classes(classes_file)
    clips = read_manifest(manifest, classes)
    n, shard = len(clips), cfg["clips_per_shard"]
    blocks = block_ranges(n, shard)
    writer = ResumableStore(out, fingerprint(manifest, classes, cfg, multi_label), len(blocks))
    group, fresh = writer.open()
    if fresh:
        frames, bins = cfg["target_frames"], cfg["num_mel_bins"]
        group.create_array("features", shape=(n, frames, bins), chunks=(1, frames, bins),
                           shards=(shard, frames, bins), dtype="float16")
        group.create_array("num_frames", shape=(n,), chunks=(shard,), dtype="int32")
        group.create_array("clip_stats", shape=(n, 2), chunks=(shard, 2), dtype="float64")
        labels = np.zeros((n, len(classes)), dtype=np.uint8)
        index = {c: i for i, c in enumerate(classes)}
        for row, clip in enumerate(clips):
            labels[row, [index[label] for label in clip.labels]] = 1
        group.create_array("labels", data=labels, chunks=(min(n, 65536), len(classes)))
        group.create_array("clip_ids", data=np.array([c.clip_id for c in clips], dtype=np.dtypes.StringDType()))
        group.create_array("split", data=np.array([c.split for c in clips], dtype=np.dtypes.StringDType()))
        group.create_array("fold", data=np.array([c.fold for c in clips], dtype=np.int16))

    pending = writer.pending(group)
    device = fbank_device(cfg)
    tasks = [dask.delayed(_write_block)(writer.partial, b, blocks[b][0], clips[slice(*blocks[b])], cfg, device)
             for b in pending]
    threads = torch.get_num_threads()
    try:
        with Progress() as progress:
            resumed = f", {len(blocks) - len(pending)} shards kept from an interrupted run" if not fresh else ""
            bar = progress.add_task(f"fbank ({'kaldi' if device is None else f'batched on {device}'}), {n} clips{resumed}", total=len(tasks))
            with _RichDaskProgress(progress, bar):
                dask.compute(*tasks, scheduler=cfg["scheduler"], num_workers=cfg["workers"])
    finally:
        torch.set_num_threads(threads)

    group.attrs.update({
        "classes": classes,
        "multi_label": multi_label,
        "feature_params": {k: cfg[k] for k in FBANK_PARAM_KEYS},
        # both agree within 1e-3 (tests/test_batched_fbank.py); recorded so that a store says how it was made
        "fbank": "torchaudio.compliance.kaldi.fbank" if device is None else f"pipeline.batched_fbank on {device}",
        "fingerprint": writer.fingerprint,
        "manifest": str(manifest),
        "created_by": "cmkd features",
    })
    writer.commit(group)
