"""DVC stage `dump_logits@<split>-<seed>`: data/runs/<split>/seed<k>/teacher/checkpoint.pt + data/features.zarr
-> data/runs/<split>/seed<k>/teacher_predictions.zarr."""
import sys

from pipeline.cache.dump import dump
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    settings = load_settings()
    launch(settings)  # through torchrun when params `distributed` asks for several processes
    dump(settings, Run(sys.argv[1], int(sys.argv[2])))
