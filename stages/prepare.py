"""DVC stage `prepare`: params data -> data/raw (manifest.csv, classes.txt; audio/ for the built-in dataset)."""
from pipeline.errors import reported
from pipeline.prepare import prepare
from pipeline.settings import load_settings

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        prepare(load_settings())
