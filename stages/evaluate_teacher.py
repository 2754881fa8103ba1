"""DVC stage `evaluate_teacher@<run>`: data/runs/<run>/teacher/checkpoint.pt -> data/metrics/<run>/teacher.json (test split)."""
import sys

from pipeline.evaluate import evaluate

evaluate("teacher", run=sys.argv[1])
