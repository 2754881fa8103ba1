"""DVC stage `train_baseline`: data/features.zarr -> data/baseline/checkpoint.pt, history.csv."""
from pipeline.params import load_params
from pipeline.train import train

train("baseline", load_params())
