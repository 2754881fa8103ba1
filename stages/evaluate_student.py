"""DVC stage `evaluate_student`: data/student/checkpoint.pt -> data/student/metrics.json (test split)."""
from pipeline.evaluate import evaluate

evaluate("student")
