"""Running a trained model over clips of the feature store."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .data import batches_of, loader
from .resident import ResidentStore
from .stores import FeatureStore
from .views import ViewSampler, augmented_input


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict_batches(model: nn.Module, store: FeatureStore, batches: list[np.ndarray], num_workers: int = 0,
                    views: ViewSampler | None = None, view_choice: list[np.ndarray | None] | None = None,
                    resident: ResidentStore | None = None):
    """Logits [len(batch), classes] on the model's device for each batch of rows, all read by one loader (or
    gathered from `resident`); with `views`, of each clip's view `view_choice[i]` (None: the clean clip)."""
    model.eval()
    dev = next(model.parameters()).device
    source = (resident.batches(batches, view_choice) if resident is not None else
              loader(store, batches, num_workers=num_workers, pin_memory=dev.type == "cuda", views=views,
                     view_choice=view_choice))
    for batch in source:
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = model(augmented_input(batch, store.normalize, dev)).float()
        yield logits  # outside the autocast block, so the consumer's code does not run under it


def predict(model: nn.Module, store: FeatureStore, rows: np.ndarray, batch_size: int,
            num_workers: int = 0, resident: ResidentStore | None = None) -> np.ndarray:
    """Logits [len(rows), classes] in the order of `rows` (which must be increasing)."""
    batches = batches_of(rows, batch_size, shuffle=False)
    logits = predict_batches(model, store, batches, num_workers, resident=resident)
    return torch.cat(list(logits)).cpu().numpy()  # one sync
