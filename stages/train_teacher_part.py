"""DVC stage `train_teacher_part@<split>-<seed>-<part>` (dump.cross_fit: k): data/features.zarr
-> data/runs/<split>/seed<k>/teacher/parts/part<j>.pt, the teacher trained without part j of the training clips."""
import sys

from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings
from pipeline.training.loop import train

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    settings = load_settings()
    launch(settings)  # through torchrun when params `distributed` asks for several processes
    train(settings, "teacher", Run(sys.argv[1], int(sys.argv[2])), part=int(sys.argv[3]))
