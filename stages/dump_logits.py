"""DVC stage `dump_logits`: data/teacher/checkpoint.pt + data/features.zarr -> data/teacher_predictions.zarr."""
from pipeline.dump import dump_logits
from pipeline.params import load_params

params = load_params()
dump_logits(params["dump"]["batch_size"], params["dump"]["clips_per_shard"])
