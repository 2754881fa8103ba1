"""Running a trained model over clips of the feature store."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .data import batches_of, loader
from .stores import FeatureStore


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict(model: nn.Module, store: FeatureStore, rows: np.ndarray, batch_size: int,
            num_workers: int = 0) -> np.ndarray:
    """Logits [len(rows), classes] in the order of `rows` (which must be increasing)."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for batch in loader(store, batches_of(rows, batch_size, shuffle=False), num_workers=num_workers,
                        pin_memory=dev.type == "cuda"):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out.append(model(store.normalize(batch["x"].to(dev, non_blocking=True))).float().cpu())
    return torch.cat(out).numpy()
