"""DVC stages `evaluate@<arch>-<split>-<seed>` and `evaluate_student@<direction>-<split>-<seed>`: a run's model
(`cnn`, `forward/student`, ...) on its test clips -> results/runs/<split>/seed<k>/<model>/metrics.json, classes.json
and data/test_logits/<split>/seed<k>/<model>.npz."""
import sys

from pipeline.errors import reported
from pipeline.evaluation.evaluate import evaluate
from pipeline.runs import Run
from pipeline.settings import load_settings

PARAMS = ("train.batch_size", "train.num_workers")  # how the test clips are batched and read

if __name__ == "__main__":
    with reported():  # a bad param or input file: its message, no traceback
        evaluate(load_settings(reads=PARAMS), sys.argv[1], Run(sys.argv[2], int(sys.argv[3])))
