"""DVC stage `features`: data/raw -> data/features.zarr, data/skipped.csv (Kaldi fbank, Dask-parallel, resumable)."""
from pipeline import layout
from pipeline.features import extract_features
from pipeline.params import load_params

params = load_params()
extract_features(layout.MANIFEST, layout.CLASSES, layout.FEATURES, params["features"], params["data"]["multi_label"],
                 skipped_list=layout.SKIPPED)
