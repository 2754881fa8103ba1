"""DVC stage `dump_logits@<direction>-<split>`: the direction's teacher (the checkpoints stage pick_teacher pinned) +
data/features.zarr -> data/runs/<split>/<direction>/cache/seed<k>.zarr for each seed (and its statistics in
results/runs/<split>/<direction>/cache/seed<k>/). A seed's cache already dumped by the same code from the same teacher
is kept."""
import sys

from pipeline import layout
from pipeline.cache.dump import dump
from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings

# teacher, student: which architecture's model a direction's teacher is; augment: the views' draws
PARAMS = ("seeds", "teacher", "student", "dump", "augment", "distributed")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        direction, split = sys.argv[1], sys.argv[2]
        settings = load_settings(reads=PARAMS)
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        for seed in settings.seeds:
            dump(settings, direction, Run(split, seed), pinned=True)
        for folder in (layout.caches(direction, split), layout.cache_reports(direction, split)):
            layout.prune_seeds(folder, settings.seeds)
