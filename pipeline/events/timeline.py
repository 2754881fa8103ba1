"""A recording of any length as a per-class score timeline, streamed through in bounded memory.

The file is decoded and resampled chunk by chunk (pipeline/features/audio.py `stream_audio`) and turned into Kaldi
fbank frames as the features stage computes them (the recipe's per-frame DC removal makes a frame independent of the
clip's mean, so the frames of a long file are the frames of any window of it), rounded to float16 as the store holds
them. Windows of the model's length (`num_frames`) are scored in batches (on the GPU when there is one), those of
consecutive files together; a window past the file's end is zero-padded, as a short clip is. Class probabilities
are sigmoids for a multi-label model and softmaxes for a single-label one (which say how the evidence is shared
among the classes it knows, not whether anything sounds: activity.py's gate says that). Two ways to a timeline:

- windows (the default, `--timeline windows`): windows every `hop` seconds, each window's clip probabilities spread
  over the hop-long steps it covers, a step's score the mean over the windows covering it. Overlapping windows vote
  on the same steps instead of each reporting the sound again; a sound shorter than a window raises every step a
  window holding it covers (docs/long-recordings.md).
- frames (`--timeline frames`, models that keep their time axis: the CNNs, EfficientAT's MobileNets, BEATs, the
  AST): the model's per-step class logits (`frame_logits`: decision-level pooling, frequency pooled and time kept)
  of windows half a window apart, each step the weighted mean of the windows covering it (a sine taper, so a step
  is read mostly from the window it is central in, away from the window's padded edges). The timeline's step is the
  model's time resolution (an EfficientNet's 32 frames, 0.32 s; an AST's time stride). The clip's loss trains the
  pooled output, not the steps, and on the validation soundscapes the steps of clip-trained models placed sounds
  worse than window voting did (docs/measurements.md "Detection in silence"): hence not the default.

Memory: the frames of the windows not yet scored, the timeline (steps x classes: an hour at 0.32 s steps is 11,250)
and the gate's block levels; the audio is never held whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

from ..errors import InputError
from ..features.audio import AudioError, stream_audio
from ..features.fbank import BatchedFbank
from ..features.frontend import checkpoint_frontend
from ..models.checkpoint import load_checkpoint
from ..runtime import autocast, device
from . import activity

METHODS = ("windows", "frames")


class NoFrameScores(InputError, ValueError):
    """--timeline frames for a model that does not keep its time axis."""


@dataclass
class Timeline:
    path: Path
    step: float                  # seconds per step
    duration: float              # seconds of audio
    scores: np.ndarray           # [steps, classes] float32, 0 where the gate is shut (see the module docstring)
    windows: int
    classes: list[str]
    multi_label: bool
    method: str = "windows"      # frames | windows
    activity: np.ndarray | None = None  # [steps] dB: the step's loudest 20 ms over the recording's background
    gate_db: float | None = None        # steps whose activity is below this scored 0 (None: no gate)

    @property
    def times(self) -> np.ndarray:
        """Each step's start, in seconds."""
        return np.arange(len(self.scores)) * self.step


def keeps_time(model: torch.nn.Module) -> bool:
    members = getattr(model, "members", [model])
    return all(hasattr(m, "frame_logits") for m in [model, *members])


class Scorer:
    """A checkpoint ready to score recordings (see the module docstring). `method`: windows or frames;
    `gate_db`: activity.py's margin (None: no gate)."""

    def __init__(self, checkpoint: Path, hop: float = 0.5, batch_size: int = 32, dev: torch.device | None = None,
                 chunk_seconds: float = 60.0, progress=None, method: str = "windows",
                 gate_db: float | None = activity.MARGIN_DB):
        self.device = dev or device()
        self.model, meta = load_checkpoint(checkpoint, self.device)
        self.classes, self.task = list(meta.classes), meta.task_kind
        self.normalization = meta.input_normalization
        self.frontend = checkpoint_frontend(meta)
        self.rate, self.shift = self.frontend.sample_rate, self.frontend.hop_ms / 1000
        self.window = meta.num_frames
        if method not in METHODS:
            raise ValueError(f"--timeline must be one of {', '.join(METHODS)}, got {method!r}")
        if method == "frames" and not keeps_time(self.model):
            raise NoFrameScores(f"{checkpoint}: a {meta.architecture} model gives no per-step scores; use "
                                "--timeline windows")
        self.method = method
        # frames between window starts: half a window for per-step scores, the hop for window voting
        self.hop = max(1, self.window // 2 if self.method == "frames" else round(hop / self.shift))
        self.gate_db = gate_db
        if self.frontend.name == "fbank":  # its frames are the file's frames: computed once, streamed
            f = meta.fbank
            self.fbank = BatchedFbank(self.rate, meta.num_mel_bins, f["frame_shift_ms"], f["frame_length_ms"],
                                      dtype=torch.float64)
        self.batch_size, self.chunk_seconds = batch_size, chunk_seconds
        self.progress = progress or (lambda seconds: None)  # told the seconds of audio each chunk adds

    @property
    def window_seconds(self) -> float:
        return self.frontend.samples_for(self.window) / self.rate

    def audio(self, path: Path, levels: activity.Levels | None = None) -> Iterator[torch.Tensor]:
        """The file's audio at the model's rate, chunk by chunk; `levels` is given each chunk."""
        for chunk in stream_audio(path, self.rate, self.chunk_seconds):
            self.progress(len(chunk) / self.rate)
            if levels is not None:
                levels.add(chunk.numpy())
            yield chunk

    def frames(self, path: Path, levels: activity.Levels | None = None) -> Iterator[torch.Tensor]:
        """The file's fbank frames [n, mel bins] (float16-rounded, as stored), chunk by chunk, in order."""
        carry = torch.zeros(0)
        for chunk in self.audio(path, levels):
            buffer = torch.cat([carry, chunk])
            count = int(self.fbank.num_frames(torch.tensor([len(buffer)]))[0])
            if count:
                feats, _ = self.fbank(buffer[None], torch.tensor([len(buffer)]), count)
                yield feats[0].half().float()
                carry = buffer[count * self.fbank.shift :]
            else:
                carry = buffer

    def windows(self, path: Path, levels: activity.Levels | None = None) -> Iterator[torch.Tensor]:
        """The model's windows over the file, `hop` frames apart, in order; the last ones padded as a short clip is
        (the fbank's: its frames streamed once; another front-end's: each window from its own audio, as a clip)."""
        if self.frontend.name != "fbank":
            yield from self.audio_windows(path, levels)
            return
        buffered, start, offset, total = torch.zeros(0, self.fbank.mel.shape[1]), 0, 0, 0
        for feats in self.frames(path, levels):
            buffered = torch.cat([buffered, feats])
            total += len(feats)
            while start + self.window <= offset + len(buffered):
                yield buffered[start - offset : start - offset + self.window]
                start += self.hop
            drop = start - offset  # frames no later window needs
            buffered, offset = buffered[drop:], offset + drop
        if total == 0:
            raise AudioError(f"{path}: shorter than one analysis frame")
        while start < max(total - self.window + self.hop, 1):  # the tail: windows past the end, zero-padded
            part = buffered[start - offset :]
            yield torch.cat([part, part.new_zeros(self.window - len(part), part.shape[1])])
            start += self.hop

    def audio_windows(self, path: Path, levels: activity.Levels | None = None) -> Iterator[torch.Tensor]:
        """Each window's frames computed from the window's own audio (a clip of the model's length), streamed."""
        size, step = self.frontend.samples_for(self.window), self.hop * round(self.shift * self.rate)
        buffered, offset, start, total = torch.zeros(0), 0, 0, 0
        pending = []

        def flush():
            if pending:
                feats, _ = self.frontend.clips(pending, self.window, torch.device("cpu"))
                pending.clear()
                yield from feats.half().float()

        for chunk in self.audio(path, levels):
            buffered, total = torch.cat([buffered, chunk]), total + len(chunk)
            while start + size <= offset + len(buffered):
                pending.append(buffered[start - offset : start - offset + size])
                start += step
                if len(pending) == self.batch_size:
                    yield from flush()
            buffered, offset = buffered[start - offset :], start
        if total < self.frontend.samples_for(1):
            raise AudioError(f"{path}: shorter than one analysis frame")
        while start < max(total - size + step, 1):  # the tail: windows past the end, padded as a short clip
            pending.append(buffered[start - offset :])
            start += step
        yield from flush()

    def timelines(self, paths: list[Path]) -> Iterator[Timeline]:
        """Each file's timeline, in order; the windows of consecutive files share batches."""
        batch, owners, open_files, enumerated = [], [], {}, set()

        def score():
            if batch:
                for (i, w), probs in zip(owners, self._probabilities(torch.stack(batch))):
                    open_files[i].add(w, probs)
                batch.clear()
                owners.clear()

        def finished():
            for i in sorted(open_files):
                if i not in enumerated or any(owner == i for owner, _ in owners):
                    return  # file order: a later file waits for this one
                yield open_files.pop(i).timeline()

        for i, path in enumerate(paths):
            open_files[i] = _Accumulator(self, Path(path), sf.info(str(path)).duration)
            for w, x in enumerate(self.windows(path, open_files[i].levels)):
                batch.append(x)
                owners.append((i, w))
                open_files[i].windows = w + 1
                if len(batch) == self.batch_size:
                    score()
                    yield from finished()
            enumerated.add(i)
            yield from finished()
        score()
        yield from finished()

    def _probabilities(self, x: torch.Tensor) -> np.ndarray:
        """[B, classes] per window, or [B, steps, classes] per step of each window (method frames)."""
        with torch.no_grad(), autocast(self.device):
            x = self.normalization(x.to(self.device))
            logits = (self.model.frame_logits(x) if self.method == "frames" else self.model(x)).float()
        return self.task.probabilities(logits).cpu().numpy()


class _Accumulator:
    """A file's step sums and weights, filled as its windows are scored, and its audio's block levels."""

    def __init__(self, scorer: Scorer, path: Path, duration: float):
        self.scorer, self.path, self.duration, self.windows = scorer, path, duration, 0
        self.levels = activity.Levels(scorer.rate) if scorer.gate_db is not None else None
        self.step_frames = float(scorer.hop)  # frames per step; method frames: set by the first window's steps
        self.sums = self.counts = None

    def _allocate(self, classes: int) -> None:
        steps = max(1, int(np.ceil(self.duration / (self.step_frames * self.scorer.shift))))
        self.sums, self.counts = np.zeros((steps, classes)), np.zeros(steps)

    def add(self, w: int, probs: np.ndarray) -> None:
        hop, window = self.scorer.hop, self.scorer.window
        if probs.ndim == 2:  # the window's own steps: step j centred on frame w * hop + (j + 1/2) * window / steps
            if self.sums is None:
                self.step_frames = window / len(probs)
                self._allocate(probs.shape[1])
            first = int(np.floor(w * hop / self.step_frames + 0.5))
            taper = np.sin(np.pi * (np.arange(len(probs)) + 0.5) / len(probs))
            keep = min(len(probs), len(self.counts) - first)
            if keep > 0:
                self.sums[first : first + keep] += probs[:keep] * taper[:keep, None]
                self.counts[first : first + keep] += taper[:keep]
            return
        if self.sums is None:
            self._allocate(len(probs))
        # window w covers frames [w * hop, w * hop + window): the steps whose middle frame is inside
        last = min(len(self.counts), w + int(np.ceil((window - hop / 2) / hop)))  # step w starts with window w
        self.sums[w:last] += probs
        self.counts[w:last] += 1

    def timeline(self) -> Timeline:
        s = self.scorer
        if self.sums is None:
            self._allocate(len(s.classes))
        scores = self.sums / np.maximum(self.counts, 1e-12)[:, None]
        for j in np.flatnonzero(self.counts == 0):  # the last steps, past the last frame: the step before's score
            scores[j] = scores[j - 1] if j else 0
        step = self.step_frames * s.shift
        active = None
        if self.levels is not None:
            active = activity.step_activity(self.levels.db(), step, len(scores))
            scores[active < s.gate_db] = 0
        return Timeline(self.path, step, self.duration, scores.astype(np.float32), self.windows, s.classes,
                        s.task.multi_label, s.method, active, s.gate_db)
