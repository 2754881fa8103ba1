"""DVC stage `evaluate_student@<split>-<seed>`: data/runs/<split>/seed<k>/student/checkpoint.pt
-> results/<split>/seed<k>/student/metrics.json, classes.json (test split)."""
import sys

from pipeline.evaluation.evaluate import evaluate
from pipeline.runs import Run
from pipeline.settings import load_settings

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    evaluate(load_settings(), "student", Run(sys.argv[1], int(sys.argv[2])))
