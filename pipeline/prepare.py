"""Stage `prepare`: the dataset as a manifest in data/raw, from the built-in generator or the user's manifest."""
from __future__ import annotations

from pathlib import Path

from . import layout
from .manifest import import_manifest
from .synthetic import write_dataset


def prepare(params: dict) -> None:
    data = params["data"]
    if data["source"] == "builtin":
        write_dataset(data, layout.RAW, seed=params["seed"])
    elif data["source"] == "manifest":
        if not data.get("manifest"):
            raise ValueError("params.yaml: data.source is 'manifest' but data.manifest names no file")
        import_manifest(Path(data["manifest"]), data.get("classes") and Path(data["classes"]), data["split"], layout.RAW)
    else:
        raise ValueError(f"params.yaml: data.source must be 'builtin' or 'manifest', got {data['source']!r}")
