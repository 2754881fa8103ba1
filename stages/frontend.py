"""DVC stage `frontend@<name>` (params `frontends`): data/raw -> data/frontends/<name>.zarr, the frames of a model
family's own front-end (pipeline/features/<name>.py) for every clip, and its content digest in
results/stores/<name>.json; the same clips and splits as data/features.zarr, tied to it by clip id."""
import sys

from pipeline.errors import reported
from pipeline.features.extract import extract
from pipeline.settings import load_settings

PARAMS = ("features", "data.multi_label", "data.split")

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        extract(load_settings(reads=PARAMS), sys.argv[1])
