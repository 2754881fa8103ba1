"""DVC stage `dump_logits@<run>`: data/runs/<run>/teacher/checkpoint.pt + data/features.zarr
-> data/runs/<run>/teacher_predictions.zarr."""
import sys

from pipeline.dump import dump_logits
from pipeline.params import load_params

params = load_params()
dump = params["dump"]
dump_logits(dump["batch_size"], dump["clips_per_shard"], run=sys.argv[1], num_workers=dump["num_workers"])
