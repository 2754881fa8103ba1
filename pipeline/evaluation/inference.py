"""Running a model over batches of clips: validation, evaluation and the dump all predict through here."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..runtime import autocast
from ..training.batches import BatchSource, BatchSpec, inference_plan, to_device


def predict_batches(model: nn.Module, source: BatchSource, specs: list[BatchSpec], normalize):
    """Logits [len(batch), classes] on the model's device for each spec, in order (augmented where a spec says so)."""
    model.eval()
    dev = next(model.parameters()).device
    for batch in source.batches(specs):
        x, _ = to_device(batch, normalize, dev)
        with torch.no_grad(), autocast(dev):
            logits = model(x).float()
        yield logits  # outside the autocast block, so the consumer's code does not run under it


def predict(model: nn.Module, source: BatchSource, rows: np.ndarray, batch_size: int, normalize) -> np.ndarray:
    """Logits [len(rows), classes] of the clean clips `rows` (which must be increasing), in that order."""
    logits = predict_batches(model, source, inference_plan(rows, batch_size), normalize)
    return torch.cat(list(logits)).cpu().numpy()  # one sync
