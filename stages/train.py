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

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        settings = load_settings()
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        arch, run = sys.argv[1], Run(sys.argv[2], int(sys.argv[3]))
        if not adopt_if_ready(settings, arch, run):
            train(settings, jobs.labels(arch), run)
