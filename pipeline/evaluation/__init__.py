"""Test-split metrics (metrics.py, evaluate.py), predictions (inference.py) and the report over runs and seeds
(report.py)."""
