"""DVC stage `dump_logits`: data/teacher/checkpoint.pt + data/features.zarr -> data/teacher_predictions.zarr."""
from pipeline.dump import dump_logits
from pipeline.params import load_params

params = load_params()
dump = params["dump"]
dump_logits(dump["batch_size"], dump["clips_per_shard"], num_workers=dump["num_workers"])
