"""DVC stage `train@<arch>-<split>`: data/features.zarr -> data/runs/<split>/<arch>/seed<k>/checkpoint.pt for each
seed of params `seeds` (and its held-out logits and training curves): the architecture trained on labels, or a ready
teacher adopted as is; with dump.cross_fit: k, also its k part teachers (<arch>/part<j>/seed<k>/), each trained
without one part of the training clips. A model already trained by the same code on the same inputs and params is
kept."""
import sys

from pipeline import layout
from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.runtime import launch
from pipeline.settings import load_settings
from pipeline.training import jobs
from pipeline.training.adopt import adopt_if_ready
from pipeline.training.loop import train

# teacher, student, directions: whether the architecture is only ever a teacher (a ready one is adopted as is)
PARAMS = ("seeds", "models.{arch}", "teacher", "student", "directions", "train", "augment", "distributed",
          "dump.cross_fit")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        arch, split = sys.argv[1], sys.argv[2]
        settings = load_settings(reads=PARAMS, arch=arch)
        launch(settings)  # through torchrun when params `distributed` asks for several processes
        name = layout.labels_model(arch)
        parts = [jobs.teacher_part(arch, part) for part in range(settings.dump.cross_fit)]
        for seed in settings.seeds:
            if not adopt_if_ready(settings, arch, Run(split, seed)):
                train(settings, jobs.labels(arch), Run(split, seed))
            for job in parts:
                train(settings, job, Run(split, seed))
        for model in [name, *(job.name for job in parts)]:
            for folder in (layout.model_dir(model, split), layout.held_out_dir(model, split),
                           layout.curves(model, split)):
                layout.prune_seeds(folder, settings.seeds)
        layout.prune_parts(layout.model_dir(name, split), len(parts))
        layout.prune_parts(layout.curves(name, split), len(parts))
