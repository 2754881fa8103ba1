"""DVC stage `pick_teacher@<direction>-<split>`: the split's models of both architectures (their folders) ->
results/runs/<split>/<direction>/teacher/seed<k>.json for each seed: the checkpoints that teach the direction and
their sha256, which dump_logits depends on (pipeline/cache/teacher.py)."""
import sys

from pipeline.cache.teacher import pin
from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.settings import load_settings

PARAMS = ("seeds", "teacher", "student", "dump.cross_fit")

if __name__ == "__main__":
    with reported():  # a bad param or a missing checkpoint: its message, no traceback
        settings = load_settings(reads=PARAMS)
        for seed in settings.seeds:
            pin(settings, sys.argv[1], Run(sys.argv[2], seed))
