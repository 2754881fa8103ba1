"""DVC stage `pick_teacher@<direction>-<split>-<seed>`: the run's models of both architectures (their folders) ->
results/runs/<split>/seed<k>/<direction>/teacher.json, the checkpoints that teach the direction and their sha256,
which dump_logits depends on (pipeline/cache/teacher.py)."""
import sys

from pipeline.cache.teacher import pin
from pipeline.errors import reported
from pipeline.runs import Run
from pipeline.settings import load_settings

PARAMS = ("teacher", "student", "dump.cross_fit")

if __name__ == "__main__":
    with reported():  # a bad param or a missing checkpoint: its message, no traceback
        pin(load_settings(reads=PARAMS), sys.argv[1], Run(sys.argv[2], int(sys.argv[3])))
