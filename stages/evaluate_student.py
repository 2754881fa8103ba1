"""DVC stage `evaluate_student@<run>`: data/runs/<run>/student/checkpoint.pt -> data/metrics/<run>/student.json (test split)."""
import sys

from pipeline.evaluate import evaluate

evaluate("student", run=sys.argv[1])
