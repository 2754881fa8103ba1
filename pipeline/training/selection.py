"""Which weights a training run keeps (params train.select, average_last, ensemble_last), tracked across epochs.

  select: last      the last epoch's weights
  select: best      the epoch with the best validation score (recorded: which epoch and its score)
  average_last: N   the mean of the weights after each of the last N epochs (PSLA's weight averaging)
  ensemble_last: N  the last N epochs' weights kept side by side; inference averages their logits

What is kept so far is part of the resume state, so a resumed run keeps the same weights as an uninterrupted one.
"""
from __future__ import annotations

import math

import torch


class WeightAverage:
    """Running mean of state dicts on the CPU (integer buffers such as BatchNorm's step count keep the last value)."""

    def __init__(self, state: dict | None = None):
        self.sums: dict[str, torch.Tensor] = (state or {}).get("sums", {})
        self.count: int = (state or {}).get("count", 0)
        self.last: dict[str, torch.Tensor] = (state or {}).get("last", {})

    def add(self, state_dict: dict[str, torch.Tensor]) -> None:
        for key, value in state_dict.items():
            value = value.detach().to("cpu", copy=True)
            if value.is_floating_point():
                self.sums[key] = self.sums[key] + value.double() if key in self.sums else value.double()
            else:
                self.last[key] = value
        self.count += 1

    def average(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: (self.sums[key] / self.count).to(value.dtype) if key in self.sums else self.last[key]
                for key, value in like.items()}

    def state(self) -> dict:
        return {"sums": self.sums, "count": self.count, "last": self.last}


def copy_to_cpu(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


class KeptWeights:
    """What train.select / average_last / ensemble_last keep, updated after every epoch."""

    def __init__(self, cfg, epochs: int, state: dict | None = None):
        state = state or {}
        self.cfg, self.epochs = cfg, epochs
        self.averaged = WeightAverage(state.get("averaged"))
        self.snapshots: list[dict] = state.get("snapshots", [])
        self.best: dict | None = state.get("best")  # {"epoch", "value", "weights"}

    def after_epoch(self, epoch: int, model: torch.nn.Module, value: float) -> None:
        """`epoch` counts from 1; `value` is its validation score (higher is better)."""
        if self.cfg.select == "best" and (self.best is None or value > self.best["value"]
                                          or math.isnan(self.best["value"])):
            self.best = {"epoch": epoch, "value": value, "weights": copy_to_cpu(model.state_dict())}
        if epoch > self.epochs - self.cfg.average_last:
            self.averaged.add(model.state_dict())
        if epoch > self.epochs - self.cfg.ensemble_last:
            self.snapshots.append(copy_to_cpu(model.state_dict()))

    def state(self) -> dict:
        return {"averaged": self.averaged.state(), "snapshots": self.snapshots, "best": self.best}

    def apply(self, model: torch.nn.Module, last_value: float, key: str, validate) -> tuple[list | None, dict, dict]:
        """Load the kept weights into `model`; returns (ensemble weights or None, the selection record, the weight
        average record or None) for the checkpoint. `validate()` scores the model as loaded now."""
        selection = {"select": self.cfg.select, "epoch": self.epochs, f"val/{key}": last_value}
        if self.cfg.select == "best":
            model.load_state_dict(self.best["weights"])
            selection.update({"epoch": self.best["epoch"], f"val/{key}": self.best["value"]})
            print(f"kept epoch {self.best['epoch']} of {self.epochs}, the best on validation ({key} "
                  f"{self.best['value']:.4g})")
        weight_average = None
        if self.cfg.average_last:
            model.load_state_dict(self.averaged.average(model.state_dict()))
            value = validate()
            weight_average = {"epochs": self.averaged.count, f"val/{key}": value}
            selection = {"select": f"average of the last {self.averaged.count} epochs", "epoch": None,
                         f"val/{key}": value}
            print(f"weights averaged over the last {self.averaged.count} epochs, val {key} {value:.4g}")
        if self.cfg.ensemble_last:
            selection = {"select": f"ensemble of the last {len(self.snapshots)} epochs", "epoch": None}
        return self.snapshots or None, selection, weight_average
