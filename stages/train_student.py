"""DVC stage `train_student@<run>`: data/features.zarr + data/runs/<run>/teacher_predictions.zarr
-> data/runs/<run>/student/checkpoint.pt, history.csv."""
import sys

from pipeline.params import load_params
from pipeline.train import train

train("student", load_params(), run=sys.argv[1])
