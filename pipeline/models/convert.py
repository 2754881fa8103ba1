"""`cmkd convert SRC --out model.pt`: a checkpoint people have (what each family reads: `cmkd models` lists it) as a
cmkd checkpoint, which every stage and `cmkd predict` loads.

The format is told from the keys; each family says what a file of its holds (its `describe_checkpoint`) and maps
the keys (its `pretrained_state`): the families are asked in turn (pipeline/models/families/). The result carries
what the model was trained with: its class list, its input normalisation, its features (frames, mel bins), and
where it came from (the source file's sha256).
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..features.frontend import DEFAULT as DEFAULT_FRONTEND
from ..features.frontend import frontend_named
from . import PretrainedError, all_families, build_model, config_class, convertible
from .checkpoint import Checkpoint, file_sha256, save_checkpoint
from .pretrained import read_state_dict, weights_file

# The normalisation (mean, std; input = (x - mean) / (2 std)) a file's training set implies, where the file itself
# does not say: AudioSet's 527 classes (method.md, the AST recipe).
KNOWN_NORMALIZATION = {527: {"mean": -4.2677393, "std": 4.5689974, "from": "AudioSet (the AST recipe)"}}


def read_class_list(path: Path, count: int) -> list[str]:
    """Class names from AudioSet's class_labels_indices.csv (index, mid, display_name) or a text file, one a line."""
    path = Path(path)
    text = path.read_text().splitlines()
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text))
        if not rows or "display_name" not in rows[0]:
            raise PretrainedError(f"{path}: expected the columns index, mid, display_name")
        names = [row["display_name"] for row in sorted(rows, key=lambda r: int(r["index"]))]
    else:
        names = [line.strip() for line in text if line.strip()]
    if len(names) != count:
        raise PretrainedError(f"{path}: {len(names)} classes, but the model has {count} outputs")
    return names


def describe(sd: dict, meta: dict, src: Path, frames: int | None) -> dict:
    """What the family whose file `src` is says of it; a family of a front-end of its own (pipeline/features/) gets
    that front-end's features and the normalisation its released models take."""
    found = next(((family, d) for family in all_families()
                  if (d := family.describe_checkpoint(sd, meta, src, frames)) is not None), None)
    if found is None:
        raise PretrainedError(f"{src}: not a checkpoint cmkd can convert ({convertible()})")
    family, described = found
    if family.frontend == DEFAULT_FRONTEND:
        return described
    frontend = frontend_named(family.frontend)
    return {"num_mel_bins": frontend.bins, "normalization": dict(frontend.released_normalization or {}),
            "features": frontend.params(), **described}


def convert(src: Path, out: Path, *, frames: int | None = None, classes: Path | None = None,
            mean: float | None = None, std: float | None = None, multi_label: bool | None = None) -> dict:
    """Write `src` as a cmkd checkpoint at `out`; returns what was read, mapped and assumed."""
    src = Path(src)
    sd, meta = read_state_dict(src)
    described = describe(sd, meta, src, frames)
    n = described["num_classes"]
    notes = []
    if classes is not None:
        names = read_class_list(classes, n)
    elif described["classes"]:
        names = described["classes"]
    else:
        names = [f"class_{i:03d}" for i in range(n)]
        notes.append(f"class names: none in the file; named class_000..class_{n - 1:03d} (give --classes, e.g. "
                     "AudioSet's class_labels_indices.csv)")
    if mean is not None and std is not None:
        normalization = {"mean": mean, "std": std}
    elif described["normalization"]:
        normalization = described["normalization"]
    elif n in KNOWN_NORMALIZATION:
        normalization = {k: v for k, v in KNOWN_NORMALIZATION[n].items() if k != "from"}
        notes.append(f"normalisation: {KNOWN_NORMALIZATION[n]['from']}'s, for {n} classes")
    else:
        raise PretrainedError(f"{src}: the file does not say which normalisation the model was trained with; give "
                              "--mean and --std (of the training set's fbank features)")
    if multi_label is None and described.get("multi_label") is not None:
        multi_label = described["multi_label"]  # the file says (a Hugging Face config's problem_type)
    elif multi_label is None:
        multi_label = n == 527  # AudioSet is multi-label; a fine-tune on ESC-50 or Speech Commands is not
        notes.append(f"multi-label: {multi_label} (assumed from {n} classes; --multi-label/--single-label to set)")

    model_config = config_class(described["name"]).model_validate({"name": described["name"], **described["model"]})
    model = build_model(model_config, n, described["num_frames"], described["num_mel_bins"])
    mapped = model.family.pretrained_state(model, sd, meta, src)
    own = model.state_dict()
    if set(mapped) != set(own) or any(mapped[k].shape != own[k].shape for k in own):
        raise PretrainedError(f"{src}: mapped weights do not fit {described['name']} (missing "
                              f"{sorted(set(own) - set(mapped))[:5]}, extra {sorted(set(mapped) - set(own))[:5]})")
    model.load_state_dict(mapped)
    features = described.get("features") or {"sample_rate": 16000, "num_mel_bins": described["num_mel_bins"],
                                              "frame_shift_ms": 10.0, "frame_length_ms": 25.0}
    features = {**features, "target_frames": described["num_frames"]}
    source = {"path": str(src), "sha256": file_sha256(weights_file(src)),
              "format": described["format"]}
    save_checkpoint(Path(out), model, Checkpoint(
        role="pretrained", architecture=described["architecture"], network=model_config.model_dump(), num_classes=n,
        num_frames=described["num_frames"], num_mel_bins=described["num_mel_bins"], classes=names,
        task="multi-label" if multi_label else "single-label", normalization=normalization, features=features,
        source=source))
    return {"source": source, "model": described["name"], "config": model_config.model_dump(),
            "frames": described["num_frames"], "classes": n, "normalization": normalization,
            "tensors mapped": len(mapped), "parameters": sum(p.numel() for p in model.parameters()), "notes": notes}
