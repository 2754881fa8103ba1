"""DVC stage `train@<arch>-<split>-<seed>`: data/features.zarr -> data/runs/<split>/seed<k>/<arch>/checkpoint.pt,
results/runs/<split>/seed<k>/<arch>/live (training curves): the architecture trained on labels (or a ready teacher
adopted as is)."""
import sys

from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings
from pipeline.training import jobs
from pipeline.training.adopt import adopt_if_ready
from pipeline.training.loop import train

# teacher, student, directions: whether the architecture is only ever a teacher (a ready one is adopted as is)
PARAMS = ("models.{arch}", "teacher", "student", "directions", "train", "augment", "distributed")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        arch, run = sys.argv[1], Run(sys.argv[2], int(sys.argv[3]))
        settings = load_settings(reads=PARAMS, arch=arch)
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        if not adopt_if_ready(settings, arch, run):
            train(settings, jobs.labels(arch), run)
