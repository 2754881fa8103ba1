"""DVC stage `train_student@<split>-<seed>`: data/features.zarr + data/runs/<split>/seed<k>/teacher_predictions.zarr
-> data/runs/<split>/seed<k>/student/checkpoint.pt, results/<split>/seed<k>/student/live (training curves)."""
import sys

from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings
from pipeline.training.loop import train

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    settings = load_settings()
    launch(settings)  # through torchrun when params `distributed` asks for several processes
    train(settings, "student", Run(sys.argv[1], int(sys.argv[2])))
