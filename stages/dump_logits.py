"""DVC stage `dump_logits@<run>`: data/runs/<run>/teacher/checkpoint.pt + data/features.zarr
-> data/runs/<run>/teacher_predictions.zarr."""
import sys

from pipeline.dump import dump_from_params
from pipeline.params import load_params

dump_from_params(load_params(), run=sys.argv[1])
