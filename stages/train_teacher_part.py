"""DVC stage `train_teacher_part@<arch>-<split>-<seed>-<part>` (dump.cross_fit: k): data/features.zarr ->
data/runs/<split>/seed<k>/<arch>/parts/part<j>/checkpoint.pt, the architecture trained on labels without part j
of the training clips."""
import sys

from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings
from pipeline.training import jobs
from pipeline.training.loop import train

PARAMS = ("models.{arch}", "train", "augment", "distributed", "dump.cross_fit")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        arch = sys.argv[1]
        settings = load_settings(reads=PARAMS, arch=arch)
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        train(settings, jobs.teacher_part(arch, int(sys.argv[4])), Run(sys.argv[2], int(sys.argv[3])))
