"""DVC stage `train_student`: data/features.zarr + data/teacher_predictions.zarr -> data/student/checkpoint.pt, history.csv."""
from pipeline.params import load_params
from pipeline.train import train

train("student", load_params())
