"""Stage `prepare`: the dataset as a manifest in data/raw (manifest.csv + classes.txt), from any supported source.

data.source: builtin (generated from the seed), manifest (your CSV), esc50, fsd50k, audioset (the datasets' own
layouts under data.root, pipeline/datasets) or folders (one folder per class under data.root).
"""
from __future__ import annotations

from pathlib import Path

from . import layout
from .datasets import audioset, esc50, folders, fsd50k
from .manifest import ManifestError, import_manifest, read_manifest, write_manifest
from .synthetic import write_dataset

SOURCES = ("builtin", "manifest", "esc50", "fsd50k", "audioset", "folders")


def prepare(params: dict) -> None:
    data = params["data"]
    source = data["source"]
    if source == "builtin":
        write_dataset(data, layout.RAW, seed=params["seed"])
        return
    if source == "manifest":
        if not data.get("manifest"):
            raise ValueError("params.yaml: data.source is 'manifest' but data.manifest names no file")
        import_manifest(Path(data["manifest"]), data.get("classes") and Path(data["classes"]), data["split"], layout.RAW)
        return
    if source in ("esc50", "fsd50k", "folders") and not data.get("root"):
        raise ValueError(f"params.yaml: data.source is {source!r} but data.root names no folder")
    if source == "esc50":
        rows, classes = esc50.read(Path(data["root"]), data["split"]["val"])
    elif source == "fsd50k":
        rows, classes = fsd50k.read(Path(data["root"]))
    elif source == "audioset":
        files = data.get("audioset") or {}
        rows, classes = audioset.read(files, Path(files.get("class_index") or ""), data["split"]["val"])
    elif source == "folders":
        rows, classes = folders.read(Path(data["root"]), data["split"])
    else:
        raise ValueError(f"params.yaml: data.source must be one of {', '.join(SOURCES)}, got {source!r}")
    if not data["multi_label"]:
        several = next((r for r in rows if len(r["labels"]) > 1), None)
        if several:
            raise ManifestError(f"{several['path']}: {len(several['labels'])} labels, but data.multi_label is false")
    write_manifest(layout.MANIFEST, rows, classes)
    read_manifest(layout.MANIFEST, classes)  # validate now: labels, splits, duplicate ids
