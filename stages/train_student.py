"""DVC stage `train_student@<direction>-<split>-<seed>`: data/features.zarr + the direction's
teacher_predictions.zarr -> data/runs/<split>/seed<k>/<direction>/student/checkpoint.pt (and its curves)."""
import sys

from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings
from pipeline.training import jobs
from pipeline.training.loop import train

# a direction's student is one of the two architectures (teacher, student: which one, by the direction)
PARAMS = ("teacher", "student", "models.{teacher}", "models.{student}", "distill", "train", "augment", "distributed")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        settings = load_settings(reads=PARAMS)
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        train(settings, jobs.student(settings.direction(sys.argv[1])), Run(sys.argv[2], int(sys.argv[3])))
