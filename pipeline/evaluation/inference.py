"""Running a model over batches of clips: validation, the held-out logits and the dump all predict through here."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..data.batches import BatchSource, BatchSpec, inference_plan, to_device
from ..runtime import autocast


def predict_batches(model: nn.Module, source: BatchSource, specs: list[BatchSpec], normalization):
    """Logits [len(batch), classes] on the model's device for each spec, in order (augmented where a spec says so)."""
    model.eval()
    dev = next(model.parameters()).device
    for batch in source.batches(specs):
        x, _ = to_device(batch, normalization, dev)
        with torch.no_grad(), autocast(dev):
            logits = model(x).float()
        yield logits  # outside the autocast block, so the consumer's code does not run under it


def predict(model: nn.Module, source: BatchSource, rows: np.ndarray, batch_size: int, normalization) -> np.ndarray:
    """Logits [len(rows), classes] of the clean clips `rows` (which must be increasing), in that order."""
    logits = predict_batches(model, source, inference_plan(rows, batch_size), normalization)
    return torch.cat(list(logits)).cpu().numpy()  # one sync
