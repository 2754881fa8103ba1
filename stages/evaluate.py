"""DVC stages `evaluate@<arch>-<split>-<seed>` and `evaluate_student@<direction>-<split>-<seed>`: the logits a
run's model (`cnn`, `forward/student`, ...) left on its held-out clips (data/held_out_logits/<split>/seed<k>/) ->
results/runs/<split>/seed<k>/<model>/metrics.json and classes.json."""
import sys

from pipeline.errors import reported
from pipeline.evaluation.evaluate import evaluate
from pipeline.runs import Run

PARAMS = ()  # the logits are all it scores

if __name__ == "__main__":
    with reported():  # a bad input file: its message, no traceback
        evaluate(sys.argv[1], Run(sys.argv[2], int(sys.argv[3])))
