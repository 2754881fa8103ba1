"""DVC stage `train_teacher`: data/features.zarr -> data/teacher/checkpoint.pt, history.csv."""
from pipeline.params import load_params
from pipeline.train import train

train("teacher", load_params())
