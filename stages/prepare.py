"""DVC stage `prepare`: params data -> data/raw (manifest.csv, classes.txt; audio/ for the built-in dataset)."""
from pipeline.params import load_params
from pipeline.prepare import prepare

prepare(load_params())
