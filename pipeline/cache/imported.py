"""dump.source: import -- teacher predictions made elsewhere, written into the cache store the student reads.

The peers publish teacher outputs rather than teachers:
- EfficientAT: an N x C `.npy` of logits and a pickle mapping a YouTube id to its row (dump.imported.index; a JSON
  object {id: row} or a CSV of ids, with a `row` column or in row order, too). The pickle is read by an unpickler
  that builds only plain containers, strings and numbers (and numpy's scalars): a pickle that would call anything
  else -- which is how a downloaded pickle runs code -- is refused, naming the file and the call, before any of it
  runs;
- CED: an HDF5 file per augmentation epoch with `topk_values` (after sigmoid), `topk_indexes` and `seeds`, and an
  index of file names in row order (a `filenames` dataset, or dump.imported.index: a CSV with a `filename`
  column). The top k become logits; the other classes get PredictionStore.TOP_K_FILL (probability ~0). CED's
  seeds replay CED's own waveform augmentation, not this pipeline's, so the values are imported as one view;
- a CSV or Parquet table: a clip column (`clip_id`, `filename`, `path`, `file`, `youtube_id` or `id`) and one
  column per class, named by class (or AudioSet mid).

What goes wrong with these files, and what this does about each:
- ids: normalised on both sides (folders, extension, a YouTube `Y` prefix, a `_start_end` segment suffix) and
  matched to the feature store's clip ids; ids that collide after normalising are refused. Coverage (matched,
  missing per split, unknown) is written to results/runs/<split>/seed<k>/<direction>/coverage.json; the cache holds the
  matched clips, and training clips it lacks are refused by the student stage unless distill.missing: gt_only.
- classes: the file's class list is matched to the store's by name or AudioSet mid, never by position; a class
  of the store the file lacks is refused.
- logits vs probabilities: as declared (dump.imported.outputs); declared probabilities outside [0, 1] are refused.
  Probabilities become logits safely: logit(p) (multi-label) or log(p) (single-label), clipped away from 0 and 1.
- provenance: the file's sha256, format and the declared teacher go into the cache's `teacher` record.
"""
from __future__ import annotations

import csv
import json
import pickle  # the EfficientAT id map, read data-only (DataOnlyUnpickler)
import re
from pathlib import Path

import numpy as np

from .. import layout
from ..errors import InputError
from ..models.checkpoint import file_sha256
from ..runs import Run
from ..stores import predictions
from ..stores.features import FeatureStore
from ..stores.predictions import PredictionStore
from ..stores.writer import ResumableStore
from ..task import task_for

ID_COLUMNS = ("clip_id", "filename", "path", "file", "youtube_id", "id")
YOUTUBE = re.compile(r"Y?([A-Za-z0-9_-]{11})(?:_\d+(?:\.\d+)?_\d+(?:\.\d+)?)?")
EPS = 1e-7


class ImportProblem(InputError, ValueError):
    """A predictions file that cannot be imported as it is; the message names the file and the problem."""


def normalise_id(raw: str) -> str:
    """A clip's id as both sides are matched on: no folders or extension; a YouTube id without its `Y` prefix and
    segment suffix (`Y--PJHxphWEs_30.000_40.000.wav` -> `--PJHxphWEs`)."""
    name = str(raw).replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if re.search(r"\.[A-Za-z0-9]{2,5}$", name) and not YOUTUBE.fullmatch(name) else name
    match = YOUTUBE.fullmatch(stem)
    return match.group(1) if match else stem


def read_class_names(path: Path) -> list[str] | list[tuple[str, str]]:
    """A class list: AudioSet's class_labels_indices.csv (index, mid, display_name) as (mid, name) pairs in index
    order, or a text file of names, one a line."""
    text = Path(path).read_text().splitlines()
    if Path(path).suffix == ".csv":
        rows = list(csv.DictReader(text))
        if rows and {"index", "display_name"} <= set(rows[0]):
            return [(r.get("mid", ""), r["display_name"]) for r in sorted(rows, key=lambda r: int(r["index"]))]
    return [line.strip() for line in text if line.strip()]


def class_columns(file_classes: list, store_classes: list[str], where: str) -> np.ndarray:
    """For each class of the store, its column in the file, matched by name (or mid)."""
    column_of = {}
    for i, entry in enumerate(file_classes):
        for name in (entry if isinstance(entry, tuple) else (entry,)):
            if name:
                column_of.setdefault(name, i)
    missing = [c for c in store_classes if c not in column_of]
    if missing:
        raise ImportProblem(f"{where}: {len(missing)} of the feature store's classes are not in the file's class "
                            f"list (first: {missing[0]!r}); classes are matched by name or mid, never by position")
    return np.array([column_of[c] for c in store_classes], dtype=np.int64)


def read_predictions(cfg, classes: list[str]) -> tuple[list[str], np.ndarray, list]:
    """(ids, values [N, file classes], the file's class list) from dump.imported."""
    path = Path(cfg.path)
    if not path.is_file():
        raise ImportProblem(f"{path}: predictions file not found (dump.imported.path)")
    kind = cfg.format if cfg.format != "auto" else {".npy": "npy", ".h5": "hdf5", ".hdf5": "hdf5", ".csv": "csv",
                                                    ".parquet": "parquet"}.get(path.suffix.lower())
    if kind is None:
        raise ImportProblem(f"{path}: unknown predictions format {path.suffix!r}; set dump.imported.format")
    if kind in ("npy", "hdf5") and not cfg.classes:
        raise ImportProblem(f"{path}: a {kind} file has no class names; set dump.imported.classes (e.g. AudioSet's "
                            "class_labels_indices.csv) so classes are matched by name, not assumed by position")
    if kind == "npy":
        values = np.load(path, mmap_mode="r")
        if not cfg.index:
            raise ImportProblem(f"{path}: an .npy needs its id -> row pickle as dump.imported.index")
        row_of = read_id_map(Path(cfg.index))
        bad = [(k, r) for k, r in row_of.items() if not (isinstance(r, (int, np.integer)) and 0 <= r < len(values))]
        if bad:
            raise ImportProblem(f"{cfg.index}: {len(bad)} ids map to rows outside the {len(values)} rows of {path} "
                                f"(first: {bad[0][0]!r} -> {bad[0][1]!r}): the map does not belong to this file")
        ids = list(row_of)
        return ids, np.asarray(values[[row_of[i] for i in ids]], dtype=np.float32), read_class_names(cfg.classes)
    if kind == "hdf5":
        return _read_hdf5(path, cfg, len(read_class_names(cfg.classes))) + (read_class_names(cfg.classes),)
    header, rows = _read_table(path, kind)
    id_column = next((c for c in ID_COLUMNS if c in header), None)
    if id_column is None:
        raise ImportProblem(f"{path}: no clip column (one of {', '.join(ID_COLUMNS)}) among {header[:6]}")
    class_names = [c for c in header if c != id_column]
    return ([str(r) for r in rows[id_column]],
            np.stack([np.asarray(rows[c], dtype=np.float32) for c in class_names], axis=1), class_names)


class DataOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists, tuples, sets, strings, bytes and numbers; numpy scalars (np.int64 rows) through the three
    constructors numpy pickles them with. Any other global a pickle asks for is refused before it is called."""
    ALLOWED = {("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("_codecs", "encode"),
               ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise ImportProblem(f"{self.path}: refused: the pickle asks for {module}.{name}, and an id map may hold "
                                "only containers, strings and numbers (a pickle that calls something can run any "
                                "code when it is loaded); nothing of it was run. Give the map as JSON or CSV")
        return super().find_class(module, name)


def read_id_map(path: Path) -> dict:
    """{clip id: row} from a pickle (read data-only), a JSON object, or a CSV (an id column and `row`, or the ids in
    row order)."""
    if not path.is_file():
        raise ImportProblem(f"{path}: id map not found (dump.imported.index)")
    if path.suffix.lower() == ".json":
        row_of = json.loads(path.read_text())
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        column = next((c for c in ID_COLUMNS if rows and c in rows[0]), None)
        if column is None:
            raise ImportProblem(f"{path}: an id map CSV needs one of the columns {', '.join(ID_COLUMNS)}")
        row_of = {r[column]: int(r["row"]) if "row" in r else i for i, r in enumerate(rows)}
    else:
        with open(path, "rb") as f:
            try:
                row_of = DataOnlyUnpickler(f, path).load()
            except ImportProblem:
                raise
            except Exception as e:
                raise ImportProblem(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(row_of, dict):
        raise ImportProblem(f"{path}: expected a mapping {{clip id: row}}, got {type(row_of).__name__}")
    return row_of


def _read_table(path: Path, kind: str) -> tuple[list[str], dict]:
    if kind == "csv":
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            columns = list(zip(*reader)) or [() for _ in header]
        return header, dict(zip(header, columns))
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportProblem(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
    table = pq.read_table(path)
    return table.column_names, {c: table.column(c).to_pylist() for c in table.column_names}


def _read_hdf5(path: Path, cfg, num_classes: int) -> tuple[list[str], np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        for name in ("topk_values", "topk_indexes"):
            if name not in f:
                raise ImportProblem(f"{path}: no {name!r} dataset (a CED predictions file has topk_values, "
                                    "topk_indexes and seeds)")
        values, indexes = f["topk_values"][:].astype(np.float32), f["topk_indexes"][:].astype(np.int64)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["filenames"][:]] if "filenames" in f \
            else None
    if names is None:
        if not cfg.index:
            raise ImportProblem(f"{path}: no `filenames` dataset; give the file-name index as dump.imported.index")
        with open(cfg.index, newline="") as f:
            names = [row["filename"] for row in csv.DictReader(f)]
    if len(names) != len(values):
        raise ImportProblem(f"{path}: {len(values)} rows but {len(names)} file names in its index")
    if values.ndim == 3:  # [clips, views, k]: the first view (the others are CED's augmentations)
        values, indexes = values[:, 0], indexes[:, 0]
    if cfg.outputs != "probabilities":
        raise ImportProblem(f"{path}: CED stores probabilities (after sigmoid); set dump.imported.outputs: "
                            "probabilities")
    if indexes.max(initial=0) >= num_classes:
        raise ImportProblem(f"{path}: class index {indexes.max()} beyond the {num_classes} classes of "
                            f"{cfg.classes}")
    dense = np.full((len(values), num_classes), np.nan, dtype=np.float32)  # NaN: outside the stored top k
    np.put_along_axis(dense, indexes, values, axis=1)
    return names, dense


def to_logits(values: np.ndarray, outputs: str, task, where: str) -> np.ndarray:
    """Declared logits as they are; declared probabilities (checked to be in [0, 1]) as logits: logit(p) or
    log(p), clipped away from 0 and 1. NaN (a class outside a top-k file's k) -> PredictionStore.TOP_K_FILL."""
    outside = np.isnan(values)
    if outputs == "probabilities":
        v = values[~outside]
        if v.size and (v.min() < 0 or v.max() > 1):
            raise ImportProblem(f"{where}: declared probabilities (dump.imported.outputs) but values span "
                                f"{v.min():.4g}..{v.max():.4g}; are these logits?")
        p = np.clip(values, EPS, 1 - EPS)
        values = task.logits_from_probabilities(p)
    elif np.isnan(values).any():
        raise ImportProblem(f"{where}: NaN logits")
    return np.where(outside, PredictionStore.TOP_K_FILL, values).astype(np.float32)


def import_predictions(settings, direction: str, run: Run, store: FeatureStore) -> dict:
    """data/runs/<split>/seed<k>/<direction>/teacher_predictions.zarr from dump.imported; returns the coverage
    report."""
    cfg = settings.dump.imported
    where = str(cfg.path)
    ids, values, file_classes = read_predictions(cfg, store.classes)
    columns = class_columns(file_classes, store.classes, where)
    logits = to_logits(values[:, columns], cfg.outputs, task_for(store.multi_label), where)

    normalised = {}
    for i, raw in enumerate(ids):
        key = normalise_id(raw)
        if key in normalised:
            raise ImportProblem(f"{where}: ids {ids[normalised[key]]!r} and {raw!r} are the same clip once normalised")
        normalised[key] = i
    store_keys = [normalise_id(c) for c in store.clip_ids]
    if len(set(store_keys)) != len(store_keys):
        raise ImportProblem(f"{store.path}: two clip ids normalise to the same id; import needs them distinct")
    row_in_file = np.array([normalised.get(k, -1) for k in store_keys], dtype=np.int64)
    matched = np.flatnonzero(row_in_file >= 0)  # feature-store rows, in its order
    known = set(store_keys)
    unknown = [raw for raw in ids if normalise_id(raw) not in known]
    coverage = {"file": where, "ids in file": len(ids), "matched": int(len(matched)),
                "unknown (in the file, not in the feature store)": len(unknown),
                "first unknown": unknown[:5],
                "missing (in the feature store, not in the file)": {
                    split: int(((row_in_file < 0) & (store.split == split)).sum())
                    for split in ("train", "val", "test")},
                "first missing training clips": [str(c) for c in
                                                 store.clip_ids[(row_in_file < 0) & (store.split == "train")][:5]]}
    if not len(matched):
        raise ImportProblem(f"{where}: none of its {len(ids)} ids matches a clip of {store.path} (first file id "
                            f"{ids[0]!r} -> {normalise_id(ids[0])!r}, first clip {store.clip_ids[0]!r})")

    sha = file_sha256(Path(cfg.path))
    teacher = {"checkpoint": None, "checkpoint_sha256": sha, "architecture": "imported", "model_config": None,
               "ensemble": None, "imported": {"path": where, "sha256": sha, "format": cfg.format,
                                              "outputs": cfg.outputs, "teacher": cfg.teacher,
                                              "index": cfg.index, "classes": cfg.classes}}
    fingerprint = json.dumps([sha, store.fingerprint, run.split, cfg.model_dump()])
    writer = ResumableStore(layout.predictions(direction, run), fingerprint, 1)
    group, fresh = writer.open()
    if fresh:
        predictions.create_arrays(group, store.clip_ids[matched], len(store.classes), settings.dump.clips_per_shard)
    predictions.write_block(group, 0, logits[row_in_file[matched]])
    writer.mark_done(group, 0)
    predictions.describe(group, store, run, direction, teacher, coverage=coverage)
    writer.commit(group)
    return coverage
