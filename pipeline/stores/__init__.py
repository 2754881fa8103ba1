"""The Zarr stores, each owned by one module that writes and reads it:

features.py     the fbank of every clip (stage features), seen through one run
predictions.py  a teacher's cached predictions, aligned with the feature store (stage dump_logits, or imported)
writer.py       resumable block-by-block writing, shared by both
schema.py       what every store shares: its schema version, the mismatch error, per-chunk reads
"""
