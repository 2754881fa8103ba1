"""DVC stage `evaluate_baseline`: data/baseline/checkpoint.pt -> data/baseline/metrics.json (test split)."""
from pipeline.evaluate import evaluate

evaluate("baseline")
