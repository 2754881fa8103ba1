"""DVC stage `train_baseline@<run>`: data/features.zarr -> data/runs/<run>/baseline/checkpoint.pt, history.csv."""
import sys

from pipeline.params import load_params
from pipeline.train import train

train("baseline", load_params(), run=sys.argv[1])
