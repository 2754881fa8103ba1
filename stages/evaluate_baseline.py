"""DVC stage `evaluate_baseline@<run>`: data/runs/<run>/baseline/checkpoint.pt -> data/metrics/<run>/baseline.json (test split)."""
import sys

from pipeline.evaluate import evaluate

evaluate("baseline", run=sys.argv[1])
