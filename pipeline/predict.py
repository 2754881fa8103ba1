"""`cmkd predict MODEL AUDIO...`: a trained (or converted) model on new recordings.

Each file is decoded and resampled as the features stage does (pipeline/features/audio.py), turned into the
model's own features: those of the front-end its checkpoint records (pipeline/features/frontend.py: the Kaldi
fbank's sample rate, mel bins, frame shift and length, or another family's own), rounded to float16 as the feature
store holds them, and normalised with the statistics the model was trained with
(pipeline/normalization.py). A clip of up to the model's window (its `num_frames`) is zero-padded, as in training, and
scored once. A longer clip is scored in windows of that length, half a window apart, the last one ending at the
clip's end; its logits are then aggregated over the windows:
  mean  the per-class mean of the windows' logits (a sound that lasts: scenes, ESC-50-style events), or
  max   the per-class maximum (a sound anywhere in the clip: AudioSet-style tagging).
Windows of many files are batched together, on the GPU when there is one.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .features.audio import AudioError, load_audio
from .features.frontend import checkpoint_frontend
from .models.checkpoint import load_checkpoint
from .runtime import autocast, device

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aiff", ".aif")


def audio_inputs(inputs: list[Path]) -> list[Path]:
    """Audio files from files, folders (searched recursively, sorted) and manifests (a .csv with a `path` column,
    paths relative to the manifest)."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        elif item.suffix.lower() == ".csv":
            with open(item, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows and "path" not in rows[0]:
                raise ValueError(f"{item}: a manifest needs a `path` column (has {', '.join(rows[0])})")
            files += [item.parent / row["path"] for row in rows]
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return files


@dataclass
class Prediction:
    path: Path
    logits: np.ndarray   # [classes], aggregated over the windows
    windows: int


class Predictor:
    """A checkpoint ready to score audio files (see the module docstring)."""

    def __init__(self, checkpoint: Path, batch_size: int = 32, dev: torch.device | None = None):
        self.device = dev or device()
        self.model, meta = load_checkpoint(checkpoint, self.device)
        self.classes: list[str] = list(meta.classes)
        self.task = meta.task_kind
        self.frames, self.mel_bins = meta.num_frames, meta.num_mel_bins
        self.frontend = checkpoint_frontend(meta)
        if self.frontend.bins != self.mel_bins:
            raise ValueError(f"{checkpoint}: records {self.frontend.bins} mel bins for a {self.mel_bins}-bin model")
        self.normalization = meta.input_normalization
        self.batch_size = batch_size

    def windows(self, path: Path) -> torch.Tensor:
        """[windows, frames, mel bins]: the file's features in the model's windows, as the feature store holds them."""
        frontend = self.frontend
        wave = load_audio(path, frontend.sample_rate, min_samples=max(1, frontend.samples_for(1)))
        if frontend.frames_of(len(wave)) <= self.frames:  # one window, padded as the features stage pads a clip
            feats, _ = frontend.clips([wave], self.frames, torch.device("cpu"))
            return feats.half().float()
        feats = frontend.frames(wave).to(torch.float16).float()  # what the model trained on
        n = feats.shape[0]
        hop = max(1, self.frames // 2)
        starts = list(range(0, n - self.frames + 1, hop))
        if starts[-1] != n - self.frames:
            starts.append(n - self.frames)
        return torch.stack([feats[s : s + self.frames] for s in starts])

    def predict(self, paths: list[Path], aggregate: str = "mean", on_error: str = "fail",
                skipped: list | None = None) -> Iterator[Prediction]:
        """Predictions file by file, in order; with on_error "skip" an unreadable file is listed in `skipped`."""
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate must be mean or max, got {aggregate!r}")
        pending: list[tuple[Path, torch.Tensor]] = []
        for i, path in enumerate(paths):
            try:
                pending.append((Path(path), self.windows(path)))
            except AudioError as e:
                if on_error != "skip":
                    raise
                if skipped is not None:
                    skipped.append((Path(path), str(e)))
            if sum(len(w) for _, w in pending) >= self.batch_size or i == len(paths) - 1:
                yield from self._score(pending, aggregate)
                pending = []

    def _score(self, pending: list[tuple[Path, torch.Tensor]], aggregate: str) -> Iterator[Prediction]:
        if not pending:
            return
        x = torch.cat([w for _, w in pending])
        logits = []
        with torch.no_grad(), autocast(self.device):
            for start in range(0, len(x), self.batch_size):
                batch = x[start : start + self.batch_size].to(self.device)
                logits.append(self.model(self.normalization(batch)).float().cpu())
        logits = torch.cat(logits)
        at = 0
        for path, w in pending:
            mine = logits[at : at + len(w)]
            at += len(w)
            pooled = mine.mean(dim=0) if aggregate == "mean" else mine.max(dim=0).values
            yield Prediction(path, pooled.numpy(), len(w))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return self.task.probabilities(torch.from_numpy(logits)).numpy()

    def as_dict(self, p: Prediction, top: int) -> dict:
        """One file's result: path, logits of every class in the model's class order, classes, top k."""
        probs = self.probabilities(p.logits)
        order = np.argsort(-probs)[:top]
        return {"path": str(p.path), "windows": p.windows, "classes": self.classes,
                "logits": [round(float(v), 6) for v in p.logits],
                "top": [{"class": self.classes[c], "probability": round(float(probs[c]), 6)} for c in order]}


def predict_files(predictor: Predictor, files: list[Path], top: int = 5, aggregate: str = "mean",
                  on_error: str = "fail", skipped: list | None = None, csv_path: Path | None = None) -> Iterator[dict]:
    """Each file's result (`Predictor.as_dict`), in order; with `csv_path` also a CSV (path, windows, top class, its
    probability, then every class's logit) written as it goes, so a later failure keeps the rows already scored."""
    handle = open(csv_path, "w", newline="") if csv_path is not None else None
    try:
        writer = csv.writer(handle) if handle is not None else None
        if writer is not None:
            writer.writerow(["path", "windows", "top_class", "top_probability", *predictor.classes])
        for p in predictor.predict(files, aggregate, on_error, skipped):
            result = predictor.as_dict(p, top)
            if writer is not None:
                writer.writerow([result["path"], p.windows, result["top"][0]["class"],
                                 result["top"][0]["probability"], *result["logits"]])
                handle.flush()
            yield result
    finally:
        if handle is not None:
            handle.close()
