"""The original authors' model code in ../shared/reference/ (EfficientAT, BEATs), imported for tests only, as its
README says: each folder on sys.path (and EfficientAT's as the working folder, whose helpers read
metadata/class_labels_indices.csv relative to it). Tests that need it skip where ../shared is absent."""
from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@contextmanager
def reference(folder: str):
    """Inside: the reference folder's modules import as their authors wrote them."""
    root = REFERENCE / folder
    if not root.is_dir():
        pytest.skip(f"{root} is absent (the authors' code, ../shared/reference)")
    cwd = Path.cwd()
    sys.path.insert(0, str(root))
    os.chdir(root)
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(root))


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Every parameter and running statistic drawn from a seeded normal (norm scales and variances around 1), so
    that no weight is left at an initialisation two implementations could share by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float64).to(tensor.dtype)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                tensor.copy_(1 + noise.abs() * scale)
            elif "norm" in name and leaf == "weight" or leaf in ("weight_g", "grep_a"):
                tensor.copy_(1 + noise * scale)
            else:
                tensor.copy_(noise * scale)
    return model


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / max |theirs|."""
    return float((ours - theirs).abs().max() / theirs.abs().max())
