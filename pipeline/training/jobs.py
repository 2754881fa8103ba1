"""What a training stage trains: one `Job` per model of a run, named as pipeline/layout.py names its folder.

  labels        an architecture (a models key) on the ground-truth loss alone: the teacher of the direction it
                teaches and the baseline of the direction it learns in (stage train@<arch>)
  student       a direction's student architecture on lambda * L_gt + (1 - lambda) * L_kd toward that direction's
                teacher's cached predictions (stage train_student@<direction>)
  teacher part  an architecture on labels without part j of the training clips (dump.cross_fit), so that the dump
                takes those clips' targets from a teacher that never saw them (stage train@<arch> trains them too)
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import layout
from ..settings import Direction


@dataclass(frozen=True)
class Job:
    name: str                          # the model's folder in the run (layout)
    role: str                          # labels | student | teacher part
    architecture: str                  # the models key it trains
    direction: Direction | None = None  # a student's
    part: int | None = None            # a part teacher's

    def __str__(self) -> str:
        if self.role == "student":
            return f"student {self.architecture} ({self.direction})"
        return self.architecture if self.part is None else f"{self.architecture} part {self.part}"


def labels(arch: str) -> Job:
    return Job(layout.labels_model(arch), "labels", arch)


def student(direction: Direction) -> Job:
    return Job(layout.student_model(direction.name), "student", direction.student, direction=direction)


def teacher_part(arch: str, part: int) -> Job:
    return Job(layout.part_model(arch, part), "teacher part", arch, part=part)


def for_role(role: str, direction: Direction) -> Job:
    """The model that plays `role` (teacher, baseline, student) in `direction`."""
    return student(direction) if role == "student" else labels(direction.architecture(role))
