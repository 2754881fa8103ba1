"""Stage `dump_logits`: the frozen teacher's predictions, cached once in a Zarr store (dump.py)."""
