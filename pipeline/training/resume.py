"""Resuming a killed training stage from its last finished epoch.

After every epoch the loop writes data/runs/<split>/seed<k>/<role>.resume.pt: model, optimizer, scheduler, RNG
states, the history so far and what the run keeps across epochs (weight sums, ensemble snapshots). A run started
again with the same inputs and params (the same `run_id`) continues from there and ends with the same weights as
an uninterrupted run; a resume file from other params or inputs is discarded, and so is one written by a run of
another world size (distributed.nproc_per_node x nnodes): its global batch, and so its schedule, differ.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch


def run_id(*parts) -> str:
    """A fingerprint of everything a training run depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def save_resume_state(path: Path, run_id: str, epoch: int, history: list[dict], model, optimizer, scheduler,
                      rng: np.random.Generator, kept: dict | None = None, world_size: int = 1) -> None:
    state = {"run_id": run_id, "world_size": world_size, "epoch": epoch, "history": history, "kept": kept or {},
             "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def resume(path: Path, run_id: str, model, optimizer, scheduler, rng: np.random.Generator,
           world_size: int = 1) -> tuple[int, list[dict], dict]:
    """Restore model, optimizer, scheduler and RNG states from `path`.

    Returns (the last finished epoch, history, what the run kept across epochs: weight sums and ensemble snapshots).
    """
    if not path.exists():
        return 0, [], {}
    state = torch.load(path, map_location="cpu", weights_only=True)
    made_by = state.get("world_size", 1)
    if made_by != world_size or state["run_id"] != run_id:  # start over
        why = (f"made by a run of {made_by} process{'es' if made_by > 1 else ''}, this one has {world_size}: the "
               "global batch and the schedule differ" if made_by != world_size else
               "made by a run with other params or inputs")
        print(f"{path}: {why}; starting over")
        path.unlink(missing_ok=True)  # (every rank of a distributed run reads it; one of them removes it)
        return 0, [], {}
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.bit_generator.state = json.loads(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    print(f"resuming {path.stem} after epoch {state['epoch']} from {path}")
    return state["epoch"], state["history"], state.get("kept", {})
