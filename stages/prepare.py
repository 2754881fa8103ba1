"""DVC stage `prepare`: params data -> data/raw (manifest.csv, classes.txt, source.json; audio/ for the built-in
dataset)."""
from pipeline.errors import reported
from pipeline.prepare import prepare
from pipeline.settings import load_settings

PARAMS = ("data",)  # what it reads of params.yaml: dvc.yaml lists the same (tests/test_stage_deps.py)

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        prepare(load_settings(reads=PARAMS))
