"""DVC stage `prepare`: params data -> data/raw (audio/*.wav, manifest.csv, classes.txt)."""
from pipeline import layout
from pipeline.params import load_params
from pipeline.synthetic import write_dataset

params = load_params()
write_dataset(params["data"], layout.RAW, seed=params["seed"])
