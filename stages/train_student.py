"""DVC stage `train_student@<direction>-<split>`: data/features.zarr + the direction's cached teacher predictions ->
data/runs/<split>/<direction>/student/seed<k>/checkpoint.pt for each seed of params `seeds` (and its held-out logits
and curves). A seed already trained by the same code on the same inputs and params is kept."""
import sys

from pipeline import layout
from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings
from pipeline.training import jobs
from pipeline.training.loop import train

# a direction's student is one of the two architectures (teacher, student: which one, by the direction)
PARAMS = ("seeds", "teacher", "student", "models.{teacher}", "models.{student}", "distill", "train", "augment",
          "distributed")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        direction, split = sys.argv[1], sys.argv[2]
        settings = load_settings(reads=PARAMS)
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        job = jobs.student(settings.direction(direction))
        for seed in settings.seeds:
            train(settings, job, Run(split, seed))
        for folder in (layout.model_dir(job.name, split), layout.held_out_dir(job.name, split),
                       layout.curves(job.name, split)):
            layout.prune_seeds(folder, settings.seeds)
