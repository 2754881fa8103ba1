"""Which checkpoints teach a direction, pinned by their sha256 before the dump runs (stage pick_teacher).

A direction's teacher is the run's model of its teacher architecture (or, with dump.cross_fit, that
architecture's k part teachers). dvc.yaml cannot name that folder per direction (the architecture comes from
params), so stage pick_teacher@<direction> reads both architectures' folders and writes
results/runs/<split>/seed<k>/<direction>/teacher.json: the teacher's checkpoints and their sha256. The dump depends
on that record and refuses a checkpoint whose sha256 it does not list: the CNN teacher's predictions are not dumped
again because the AST was retrained, and never dumped from a checkpoint other than the one DVC saw.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import layout
from ..errors import InputError
from ..provenance import file_sha256
from ..runs import Run


class TeacherChanged(InputError, ValueError):
    """A teacher checkpoint other than the one pinned for the dump."""


def teacher_checkpoints(settings, direction: str, run: Run) -> list[Path]:
    """The direction's teacher: the run's model of its teacher architecture, or its cross-fit part teachers."""
    arch = settings.direction(direction).teacher
    parts = settings.dump.cross_fit
    if parts:
        return [layout.checkpoint(layout.part_model(arch, j), run) for j in range(parts)]
    return [layout.checkpoint(layout.labels_model(arch), run)]


def pin(settings, direction: str, run: Run) -> dict:
    """Write the direction's teacher record (stage pick_teacher); returns it."""
    arch = settings.direction(direction).teacher
    paths = teacher_checkpoints(settings, direction, run)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)}: the {direction} teacher ({arch}) is not trained yet")
    record = {"direction": direction, "architecture": arch,
              "checkpoints": [{"path": str(p), "sha256": file_sha256(p)} for p in paths]}
    out = layout.teacher_pin(direction, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def check_pinned(direction: str, run: Run, paths: list[Path]) -> None:
    """Refuse to dump from checkpoints other than the ones stage pick_teacher pinned."""
    record = json.loads(layout.teacher_pin(direction, run).read_text())
    pinned = {c["path"]: c["sha256"] for c in record["checkpoints"]}
    for path in paths:
        if pinned.get(str(path)) != file_sha256(path):
            raise TeacherChanged(f"{path}: not the {direction} teacher pinned in {layout.teacher_pin(direction, run)}"
                                 " (its sha256 differs, or it is not listed): run stage pick_teacher again")
