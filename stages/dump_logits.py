"""DVC stage `dump_logits@<direction>-<split>-<seed>`: the direction's teacher (the checkpoints stage pick_teacher
pinned) + data/features.zarr -> data/runs/<split>/seed<k>/<direction>/teacher_predictions.zarr."""
import sys

from pipeline.cache.dump import dump
from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings

# teacher, student: which architecture's model a direction's teacher is; augment: the views' draws
PARAMS = ("teacher", "student", "dump", "augment", "distributed")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        settings = load_settings(reads=PARAMS)
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        dump(settings, sys.argv[1], Run(sys.argv[2], int(sys.argv[3])), pinned=True)
