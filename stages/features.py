"""DVC stage `features`: data/raw -> data/features.zarr, data/skipped.csv (Kaldi fbank, Dask-parallel, resumable)."""
from pipeline.features.extract import extract
from pipeline.settings import load_settings

extract(load_settings())
