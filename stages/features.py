"""DVC stage `features`: data/raw -> data/features.zarr, results/skipped.csv (Kaldi fbank, Dask-parallel, resumable)."""
from pipeline.errors import reported
from pipeline.features.extract import extract
from pipeline.settings import load_settings

PARAMS = ("features", "data.multi_label", "data.split")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        extract(load_settings(reads=PARAMS))
