"""DVC stage `evaluate_teacher@<split>-<seed>`: data/runs/<split>/seed<k>/teacher/checkpoint.pt
-> results/<split>/seed<k>/teacher/metrics.json, classes.json (test split)."""
import sys

from pipeline.evaluation.evaluate import evaluate
from pipeline.runs import Run
from pipeline.settings import load_settings

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    evaluate(load_settings(), "teacher", Run(sys.argv[1], int(sys.argv[2])))
