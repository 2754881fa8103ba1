"""DVC stage `train_teacher@<run>`: data/features.zarr -> data/runs/<run>/teacher/checkpoint.pt, history.csv."""
import sys

from pipeline.params import load_params
from pipeline.train import train

train("teacher", load_params(), run=sys.argv[1])
