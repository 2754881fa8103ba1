"""Stage `features`: audio decoded (audio.py), Kaldi fbank (fbank.py), written to a sharded Zarr store (extract.py)."""
