"""Predicting (inference.py), the held-out logits a training keeps (held_out.py), their test-split metrics
(evaluate.py) and the report over runs and seeds (report.py)."""
