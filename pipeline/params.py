"""Reading params.yaml and resolving the model configuration of a role (teacher, student, baseline)."""
from __future__ import annotations

from pathlib import Path

import yaml

ROLES = ("teacher", "student", "baseline")


def load_params(path: str | Path = "params.yaml") -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def architecture(params: dict, role: str) -> str:
    """The key under `models` that `role` uses; the baseline is the student's architecture without KD."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    key = params["teacher"] if role == "teacher" else params["student"]
    if key not in params["models"]:
        raise KeyError(f"params.yaml: {role} uses models.{key}, which is not defined (have {sorted(params['models'])})")
    return key


def model_config(params: dict, role: str) -> dict:
    return dict(params["models"][architecture(params, role)])
