"""A recording of any length as a per-class score timeline, streamed through in bounded memory.

The file is decoded and resampled chunk by chunk (pipeline/features/audio.py `stream_audio`) and turned into Kaldi
fbank frames as the features stage computes them (the recipe's per-frame DC removal makes a frame independent of the
clip's mean, so the frames of a long file are the frames of any window of it), rounded to float16 as the store holds
them. Windows of the model's length (`num_frames`) start every `hop` seconds; a window past the file's end is
zero-padded, as a short clip is. The windows of every file given are scored in batches (on the GPU when there is
one), and each window's class probabilities (sigmoid for a multi-label model; softmax for a single-label one, which
then says how the window's evidence is shared among the classes it knows, not whether anything sounds) are spread
over the hop-long steps it covers: a step's score is the mean over the windows that cover it. Overlapping windows
thus vote on the same steps instead of each reporting the sound again, and the timeline's resolution is the hop,
while what a step's score can see is a window: a sound shorter than a window raises the scores of every step a
window holding it covers (docs/long-recordings.md).

Memory: the frames of the windows not yet scored and the timeline (steps x classes): an hour at a 0.5 s hop is
7,200 steps; the audio is never held whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

from ..features.audio import AudioError, stream_audio
from ..features.fbank import BatchedFbank
from ..features.frontend import checkpoint_frontend
from ..models.checkpoint import load_checkpoint
from ..runtime import autocast, device


@dataclass
class Timeline:
    path: Path
    step: float                  # seconds per step (the hop)
    duration: float              # seconds of audio
    scores: np.ndarray           # [steps, classes] float32: the mean probability of the windows covering each step
    windows: int
    classes: list[str]
    multi_label: bool

    @property
    def times(self) -> np.ndarray:
        """Each step's start, in seconds."""
        return np.arange(len(self.scores)) * self.step


class Scorer:
    """A checkpoint ready to score recordings window by window (see the module docstring)."""

    def __init__(self, checkpoint: Path, hop: float = 0.5, batch_size: int = 32, dev: torch.device | None = None,
                 chunk_seconds: float = 60.0, progress=None):
        self.device = dev or device()
        self.model, meta = load_checkpoint(checkpoint, self.device)
        self.classes, self.task = list(meta.classes), meta.task_kind
        self.normalization = meta.input_normalization
        self.frontend = checkpoint_frontend(meta)
        self.rate, self.shift = self.frontend.sample_rate, self.frontend.hop_ms / 1000
        self.window = meta.num_frames
        self.hop = max(1, round(hop / self.shift))  # frames between window starts
        if self.frontend.name == "fbank":  # its frames are the file's frames: computed once, streamed
            f = meta.fbank
            self.fbank = BatchedFbank(self.rate, meta.num_mel_bins, f["frame_shift_ms"], f["frame_length_ms"],
                                      dtype=torch.float64)
        self.batch_size, self.chunk_seconds = batch_size, chunk_seconds
        self.progress = progress or (lambda seconds: None)  # told the seconds of audio each chunk adds

    @property
    def window_seconds(self) -> float:
        return self.frontend.samples_for(self.window) / self.rate

    def frames(self, path: Path) -> Iterator[torch.Tensor]:
        """The file's fbank frames [n, mel bins] (float16-rounded, as stored), chunk by chunk, in order."""
        carry = torch.zeros(0)
        for chunk in stream_audio(path, self.rate, self.chunk_seconds):
            self.progress(len(chunk) / self.rate)
            buffer = torch.cat([carry, chunk])
            count = int(self.fbank.num_frames(torch.tensor([len(buffer)]))[0])
            if count:
                feats, _ = self.fbank(buffer[None], torch.tensor([len(buffer)]), count)
                yield feats[0].half().float()
                carry = buffer[count * self.fbank.shift :]
            else:
                carry = buffer

    def windows(self, path: Path) -> Iterator[torch.Tensor]:
        """The model's windows over the file, `hop` frames apart, in order; the last ones padded as a short clip is
        (the fbank's: its frames streamed once; another front-end's: each window from its own audio, as a clip)."""
        if self.frontend.name != "fbank":
            yield from self.audio_windows(path)
            return
        buffered, start, offset, total = torch.zeros(0, self.fbank.mel.shape[1]), 0, 0, 0
        for feats in self.frames(path):
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

    def audio_windows(self, path: Path) -> Iterator[torch.Tensor]:
        """Each window's frames computed from the window's own audio (a clip of the model's length), streamed."""
        size, step = self.frontend.samples_for(self.window), self.hop * round(self.shift * self.rate)
        buffered, offset, start, total = torch.zeros(0), 0, 0, 0
        pending = []

        def flush():
            if pending:
                feats, _ = self.frontend.clips(pending, self.window, torch.device("cpu"))
                pending.clear()
                yield from feats.half().float()

        for chunk in stream_audio(path, self.rate, self.chunk_seconds):
            self.progress(len(chunk) / self.rate)
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
            for w, x in enumerate(self.windows(path)):
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
        with torch.no_grad(), autocast(self.device):
            logits = self.model(self.normalization(x.to(self.device))).float()
        return self.task.probabilities(logits).cpu().numpy()


class _Accumulator:
    """A file's step sums and counts, filled as its windows are scored."""

    def __init__(self, scorer: Scorer, path: Path, duration: float):
        self.scorer, self.path, self.duration, self.windows = scorer, path, duration, 0
        steps = max(1, int(np.ceil(duration / (scorer.hop * scorer.shift))))
        self.sums = np.zeros((steps, len(scorer.classes)), dtype=np.float64)
        self.counts = np.zeros(steps)

    def add(self, w: int, probs: np.ndarray) -> None:
        """Window w covers frames [w * hop, w * hop + window): the steps whose middle frame is inside."""
        hop, window = self.scorer.hop, self.scorer.window
        last = min(len(self.counts), w + int(np.ceil((window - hop / 2) / hop)))  # step w starts with window w
        self.sums[w:last] += probs
        self.counts[w:last] += 1

    def timeline(self) -> Timeline:
        scores = self.sums / np.maximum(self.counts, 1)[:, None]
        for j in np.flatnonzero(self.counts == 0):  # the last steps, past the last frame: the step before's score
            scores[j] = scores[j - 1] if j else 0
        s = self.scorer
        return Timeline(self.path, s.hop * s.shift, self.duration, scores.astype(np.float32), self.windows,
                        s.classes, s.task.multi_label)
