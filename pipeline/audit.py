"""`cmkd inspect PATH`: what an artifact holds and where it came from, as rich tables or JSON.

Recognised: a feature store, a cached-predictions store (both Zarr), a checkpoint (.pt), a model's held-out logits
(.npz, data/held_out_logits/), a metrics or report file (.json). Value statistics over a whole store are computed
with Dask, one task per shard, so they scale to AudioSet-size stores. For cached predictions the teacher's metrics
are recomputed from the cache against the feature store's labels, with a calibration summary and the classes it
confuses most.
"""
from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import torch
import zarr
from rich.console import Console
from rich.table import Table

from .cache.dump import audited, split_statistics
from .evaluation import held_out
from .models.checkpoint import read_checkpoint
from .stores.features import FeatureStore
from .stores.predictions import PredictionStore
from .stores.schema import read_many, read_rows
from .task import task_for


def inspect_path(path: Path, clip: str | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    if path.suffix == ".pt":
        return inspect_checkpoint(path)
    if path.suffix == ".npz":
        return inspect_held_out(path, clip)
    if path.suffix == ".json":
        return {"kind": "metrics", "path": str(path), "values": json.loads(path.read_text())}
    if (path / "zarr.json").is_file():
        created_by = zarr.open_group(path, mode="r").attrs.get("created_by", "")
        if created_by == "cmkd features":
            return inspect_features(path, clip)
        if created_by == "cmkd dump_logits":
            return inspect_predictions(path, clip)
        raise ValueError(f"{path}: a Zarr group, but not one cmkd wrote (created_by={created_by!r})")
    raise ValueError(f"{path}: not a feature store, prediction store, checkpoint (.pt), held-out logits (.npz) or "
                     "metrics file (.json)")


def describe_arrays(group: zarr.Group, root: Path) -> list[dict]:
    rows = []
    for name, array in sorted(group.arrays()):
        on_disk = sum(f.stat().st_size for f in (root / name).rglob("*") if f.is_file())
        rows.append({"array": name, "shape": list(array.shape), "dtype": str(array.dtype),
                     "chunks": list(array.chunks), "shards": list(array.shards) if array.shards else None,
                     "bytes on disk": on_disk, "bytes raw": int(np.prod(array.shape)) * array.dtype.itemsize
                     if array.dtype.kind in "biuf" else None})
    return rows


def value_stats(array: zarr.Array) -> dict:
    """Mean, std, min, max and NaN/inf counts over the whole array, one Dask task per shard."""
    x = da.from_zarr(array, chunks=array.shards or array.chunks).astype(np.float64)
    finite = da.isfinite(x)
    mean, std, low, high, nan, inf = da.compute(
        da.nanmean(da.where(finite, x, np.nan)), da.nanstd(da.where(finite, x, np.nan)),
        da.nanmin(da.where(finite, x, np.nan)), da.nanmax(da.where(finite, x, np.nan)),
        da.isnan(x).sum(), da.isinf(x).sum())
    return {"mean": float(mean), "std": float(std), "min": float(low), "max": float(high),
            "nan": int(nan), "inf": int(inf)}


def _split_counts(store: FeatureStore) -> dict:
    names, counts = np.unique(store.split, return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}


def inspect_features(path: Path, clip: str | None = None) -> dict:
    store = FeatureStore(path)
    attrs = dict(store.group.attrs)
    folds = sorted(set(store.folds.tolist()) - {0})
    frames, used = store.group["num_frames"][:], store.skipped == ""  # a skipped clip has no frames, not padding
    groups = store.groups
    out = {
        "kind": "feature store", "path": str(path),
        "summary": {"clips": len(store.clip_ids), "classes": len(store.classes), "multi_label": store.multi_label,
                    "frames": store.num_frames, "mel_bins": store.num_mel_bins,
                    "splits (run main)": _split_counts(store) if not folds else "set by the run",
                    "folds": folds or None, "skipped clips": int((store.skipped != "").sum()),
                    "clips cropped": int((used & (frames > store.num_frames)).sum()),
                    "clips padded": int((used & (frames < store.num_frames)).sum()),
                    "groups": len(set(groups[groups != ""].tolist())) or None},
        "arrays": describe_arrays(store.group, path),
        "input length": attrs.get("input_length") or "not recorded (a store written before it was)",
        "features": value_stats(store.features),
        "classes": store.classes,
        "provenance": {k: attrs[k] for k in ("feature_params", "fbank", "fingerprint", "manifest", "code",
                                             "created_by") if k in attrs},
    }
    if clip is not None:
        out["clip"] = _clip_features(store, clip)
    return out


def _row(store: FeatureStore, clip: str) -> int:
    rows = np.flatnonzero(store.clip_ids == clip)
    if len(rows) == 0:
        raise KeyError(f"{store.path}: no clip {clip!r}")
    return int(rows[0])


def _clip_features(store: FeatureStore, clip: str) -> dict:
    row = _row(store, clip)
    x = read_rows(store.features, np.array([row]))[0].astype(np.float64)
    frames = int(store.group["num_frames"][row])
    return {"clip_id": clip, "row": row, f"split (run {store.run})": str(store.split[row]),
            "fold": int(store.folds[row]),
            "labels": [store.classes[c] for c in np.flatnonzero(store.labels[row])],
            "frames before pad/crop": frames, "skipped": str(store.skipped[row]) or None,
            "mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max()),
            "mean over time, first 8 mel bins":
                np.round(x[: max(1, min(frames, store.num_frames))].mean(0)[:8], 3).tolist()}


def inspect_predictions(path: Path, clip: str | None = None) -> dict:
    cache = PredictionStore(path)
    attrs = dict(cache.group.attrs)
    store = FeatureStore(Path(attrs["features"]), cache.run)
    cache_rows = cache.check_matches(store, missing="gt_only")  # refuses a cache that does not belong to it
    cached = np.flatnonzero(cache_rows >= 0)
    out = {
        "kind": "cached teacher predictions", "path": str(path),
        "summary": {"clips": len(cache.clip_ids), "classes": len(cache.classes), "run": cache.run,
                    "feature store": str(store.path), "matches the feature store": True,
                    "feature clips not cached": int((cache_rows < 0).sum()),
                    "augmented views": cache.views or "none (plain cache)",
                    "imported from": attrs["teacher"].get("imported") or "no (dumped by a teacher here)",
                    "coverage": attrs.get("coverage") or "every clip",
                    "teachers": len(attrs["teacher"].get("ensemble") or [attrs["teacher"]])},
        "arrays": describe_arrays(cache.group, path),
        "logits": value_stats(cache.logits),
        "provenance": {"teacher": attrs["teacher"], "features_fingerprint": attrs["features_fingerprint"],
                       "code": attrs.get("code"), "created_by": attrs["created_by"]},
        # per split: the teacher's metric and its targets' entropy / confidence (as the dump's targets.json)
        "teacher metrics and targets from the cache (tau 1)": split_statistics(cache.logits, store, cache_rows),
    }
    labels = store.labels
    if attrs.get("cross_fit"):
        out["cross-fit"] = cross_fit_summary(cache, store, cache_rows, attrs)
    test = cached[store.split[cached] == "test"]
    scored = test if len(test) else cached
    rows = audited(scored)
    task = task_for(store.multi_label)
    probs = task.teacher_probs(torch.from_numpy(read_many(cache.logits, cache_rows[rows])), 1.0).numpy()
    scope = ("test" if len(test) else "all") + (f", a sample of {len(rows)}" if len(rows) < len(scored) else "")
    out[f"calibration ({scope} clips)"] = calibration(*task.confidence(probs, labels[rows]))
    out["where it errs most"] = task.weakest(probs, labels[rows], store.classes)
    if clip is not None:
        row = _row(store, clip)
        info = _clip_features(store, clip)
        if cache_rows[row] >= 0:
            p = task.teacher_probs(torch.from_numpy(cache.logits[int(cache_rows[row])]), 1.0).numpy()
            info["teacher top 5"] = [{"class": store.classes[c], "probability": round(float(p[c]), 4)}
                                     for c in np.argsort(-p)[:5]]
        else:
            info["teacher top 5"] = "not cached"
        out["clip"] = info
    return out


def cross_fit_summary(cache: PredictionStore, store: FeatureStore, cache_rows: np.ndarray, attrs: dict) -> dict:
    """Which teacher made which rows, and whether each training clip's teacher really held it out."""
    part = np.full(len(store.clip_ids), -2, dtype=np.int64)  # -2: not cached
    cached = cache_rows >= 0
    part[cached] = cache.group["teacher_part"][:][cache_rows[cached]]
    teachers = attrs["teacher"]["cross_fit"]["parts"]
    rows = {}
    for record in teachers:
        meta = read_checkpoint(record["checkpoint"])[2] if Path(record["checkpoint"]).exists() else None
        mine = np.flatnonzero(part == record["part"])
        held_out = set(meta.cross_fit["held_out"]) if meta else None
        rows[f"part {record['part']}"] = {
            "clips": int(len(mine)), "checkpoint": record["checkpoint"],
            "every clip held out by its teacher": (set(map(str, store.clip_ids[mine])) <= held_out)
            if held_out is not None else "checkpoint not found"}
    rows["mean of the k teachers"] = {"clips": int((part == -1).sum()),
                                      "splits": sorted(set(store.split[part == -1].tolist()))}
    return {"k": attrs["cross_fit"]["k"], "split seed": attrs["cross_fit"]["seed"], **rows}


def calibration(confidence: np.ndarray, hits: np.ndarray, bins: int = 15) -> dict:
    """Expected calibration error of predictions with these confidences and correctness (Task.confidence)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = sum(abs(hits[which == b].mean() - confidence[which == b].mean()) * (which == b).mean()
              for b in range(bins) if (which == b).any())
    return {"ECE": float(ece), "mean confidence": float(confidence.mean()), "mean correctness": float(hits.mean()),
            "bins": bins}


def inspect_held_out(path: Path, clip: str | None = None) -> dict:
    kept = held_out.read(path)
    task = task_for(kept.multi_label)
    splits = {split: getattr(kept, split) for split in held_out.SPLITS}
    out = {
        "kind": "held-out logits", "path": str(path),
        "summary": {**kept.model, "task": task.name, "classes": len(kept.classes),
                    **{f"{split} clips": len(clips.labels) for split, clips in splits.items()},
                    "nan or inf logits": int(sum((~np.isfinite(c.logits)).sum() for c in splits.values()))},
        f"{task.headline} per split": {split: round(task.score(c.logits, c.labels), 4) for split, c in splits.items()},
        "logits": {"min": float(kept.test.logits.min()), "max": float(kept.test.logits.max()),
                   "mean": float(kept.test.logits.mean())},
    }
    probs = task.teacher_probs(torch.from_numpy(kept.test.logits), 1.0).numpy()
    out["calibration (test clips)"] = calibration(*task.confidence(probs, kept.test.labels))
    out["where it errs most"] = task.weakest(probs, kept.test.labels, kept.classes)
    if clip is not None:
        found = [(split, int(i)) for split, c in splits.items() for i in np.flatnonzero(c.clip_ids == clip)]
        if not found:
            raise ValueError(f"{path}: no held-out clip {clip!r}")
        split, i = found[0]
        p = task.teacher_probs(torch.from_numpy(splits[split].logits[i]), 1.0).numpy()
        out["clip"] = {"clip_id": clip, "split": split,
                       "labels": [kept.classes[c] for c in np.flatnonzero(splits[split].labels[i])],
                       "top 5": [{"class": kept.classes[c], "probability": round(float(p[c]), 4)}
                                 for c in np.argsort(-p)[:5]]}
    return out


def inspect_checkpoint(path: Path) -> dict:
    weights, ensemble, meta = read_checkpoint(path)
    floats = [t for t in weights.values() if t.is_floating_point()]
    described = meta.model_dump(exclude={"history", "classes"})
    return {
        "kind": "checkpoint", "path": str(path),
        "summary": {"parameters": sum(t.numel() for t in floats), "tensors": len(weights),
                    "nan or inf values": int(sum((~torch.isfinite(t)).sum().item() for t in floats)),
                    "ensemble members": len(ensemble or []) or None, "epochs trained": len(meta.history),
                    "bytes on disk": path.stat().st_size},
        "provenance": {k: v for k, v in described.items() if v not in (None, {}, [])},
        "last epoch": meta.history[-1] if meta.history else None,
        "classes": meta.classes,
    }


def render(report: dict, console: Console) -> None:
    console.print(f"[bold]{report['kind']}[/bold]  {report['path']}")
    for section, value in report.items():
        if section in ("kind", "path") or value is None:
            continue
        if section == "classes":
            console.print(f"[bold]classes[/bold] ({len(value)}): " + ", ".join(value[:20])
                          + (", ..." if len(value) > 20 else ""))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            table = Table(title=section, title_justify="left")
            for column in value[0]:
                table.add_column(column)
            for row in value:
                table.add_row(*(_cell(v) for v in row.values()))
            console.print(table)
        elif isinstance(value, dict):
            table = Table(title=section, title_justify="left", show_header=False)
            table.add_column("key", style="bold")
            table.add_column("value")
            for key, v in value.items():
                table.add_row(str(key), _cell(v))
            console.print(table)
        else:
            console.print(f"[bold]{section}[/bold]: {_cell(value)}")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)
