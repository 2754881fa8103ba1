"""DVC stage `evaluate_teacher`: data/teacher/checkpoint.pt -> data/teacher/metrics.json (test split)."""
from pipeline.evaluate import evaluate

evaluate("teacher")
