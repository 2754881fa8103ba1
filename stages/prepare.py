"""DVC stage `prepare`: params data -> data/raw (manifest.csv, classes.txt; audio/ for the built-in dataset)."""
from pipeline.prepare import prepare
from pipeline.settings import load_settings

prepare(load_settings())
