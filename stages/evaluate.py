"""DVC stages `evaluate@<arch>-<split>` and `evaluate_student@<direction>-<split>`: the logits a model (`cnn`,
`forward/student`, ...) left on its held-out clips for each seed (data/held_out_logits/<split>/<name>/) ->
results/runs/<split>/<name>/scores/seed<k>/metrics.json and classes.json."""
import sys

from pipeline.errors import reported
from pipeline.evaluation.evaluate import evaluate
from pipeline.runs import Run
from pipeline.settings import load_settings

PARAMS = ("seeds",)  # the logits are all it scores

if __name__ == "__main__":
    with reported():  # a bad input file: its message, no traceback
        name, split = sys.argv[1], sys.argv[2]
        for seed in load_settings(reads=PARAMS).seeds:
            evaluate(name, Run(split, seed))
