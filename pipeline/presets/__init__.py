"""Recipe presets: `cmkd preset NAME` writes the values a recipe sets into params.yaml, in place.

Each preset here holds the values its recipe sets: builtin.yaml the demo's (what params.yaml ships with), own-data.yaml
the recipe for a user's own manifest (chosen on validation over real data: docs/measurements.md), esc50.yaml,
fsd50k.yaml and audioset.yaml the papers' (method.md's recipe table). Every preset sets the same keys, so switching
from one to another leaves nothing of the first behind.
params.yaml is rewritten with ruamel.yaml's round trip (DVC's own YAML library): its comments, order and every
other value stay as they are. Keys a preset sets must already exist in params.yaml, except a model's: a model
configuration holds the keys of its family (pipeline/models/), so once the names are set, each `models.<key>` gains
the keys its family takes that the preset sets and loses those its family does not take (an EfficientNet's
`pooling` under an EfficientAT MobileNet), and the command says which.
"""
from __future__ import annotations

import io
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

PRESETS = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def load_preset(name: str) -> dict:
    path = PRESETS / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no preset {name!r}; available: {', '.join(available())}")
    return _plain(YAML(typ="safe", pure=True).load(path.read_text()))


NEEDS = {"own-data": ("manifest", "--manifest"), "esc50": ("root", "--root"), "fsd50k": ("root", "--root")}


def with_options(name: str, root: Path | None = None, manifest: Path | None = None, multi_label: bool | None = None,
                 sets: list[str] = ()) -> dict:
    """Preset `name` with what `cmkd preset` was given on top: the dataset's folder or manifest (made absolute, so
    the params work from any stage's folder), data.multi_label, and KEY=VALUE overrides."""
    overrides = load_preset(name)
    if name in NEEDS and {"root": root, "manifest": manifest}[NEEDS[name][0]] is None:
        raise ValueError(f"preset {name} needs {NEEDS[name][1]}")
    for key, path, kind in (("root", root, "folder"), ("manifest", manifest, "file")):
        if path is not None:
            if not (path.is_dir() if kind == "folder" else path.is_file()):
                raise ValueError(f"--{key} {path}: not a {kind}")
            overrides.setdefault("data", {})[key] = str(Path(path).resolve())
    if multi_label is not None:
        overrides.setdefault("data", {})["multi_label"] = multi_label
    for item in sets:
        overrides = merged(overrides, parse_override(item))
    return overrides


def parse_override(item: str) -> dict:
    """`KEY=VALUE` (VALUE in YAML, dotted KEY) as a nested dict: `train.mixup=0.5` -> {"train": {"mixup": 0.5}}."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"{item!r}: expected KEY=VALUE")
    nested = YAML(typ="safe", pure=True).load(value)
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def leaves(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def merged(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) and value else value
    return out


def family_keys(model: dict) -> set[str] | None:
    """The keys the family of model configuration `model` takes (None: a name no family has; settings says so)."""
    from ..models import config_class

    try:
        return set(config_class(model.get("name")).model_fields)
    except (KeyError, ValueError, TypeError):
        return None


def apply(params_file: Path, overrides: dict, dropped: list[str] | None = None) -> dict:
    """Write `overrides` (nested like params.yaml) into params_file, keeping its comments; returns the new params.
    `dropped` is given the model keys that left because their model's family does not take them."""
    params_file = Path(params_file)
    yaml = YAML()  # round trip
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(float, _float)
    yaml.representer.add_representer(type(None), lambda r, v: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    document = yaml.load(params_file.read_text())
    missing, models = [], document.get("models") if isinstance(document, CommentedMap) else None
    names = {k[1]: v for k, v in leaves(overrides).items() if len(k) == 3 and k[0] == "models" and k[2] == "name"}
    for key, value in leaves(overrides).items():
        node = document
        for part in key[:-1]:
            node = node.get(part) if isinstance(node, CommentedMap) else None
        takes = (len(key) == 3 and key[0] == "models" and isinstance(node, CommentedMap)
                 and key[2] in (family_keys({**node, "name": names.get(key[1], node.get("name"))}) or ()))
        if not isinstance(node, CommentedMap) or (key[-1] not in node and not takes):
            missing.append(".".join(key))
            continue
        node[key[-1]] = _flow(value)
    for key, model in (models or {}).items():
        allowed = family_keys(model) if isinstance(model, CommentedMap) else None
        for extra in [k for k in model if allowed is not None and k not in allowed]:
            del model[extra]
            if dropped is not None:
                dropped.append(f"models.{key}.{extra}")
    if missing:
        raise KeyError(f"{params_file}: the preset sets {', '.join(missing)}, which params.yaml does not have")
    text = io.StringIO()
    yaml.dump(document, text)
    params_file.write_text(text.getvalue())
    return _plain(YAML(typ="safe", pure=True).load(text.getvalue()))


def _float(representer, value: float):
    """Floats as params.yaml writes them: 1.0e-3 below 0.01 (a number in YAML 1.1, PyYAML, too: with its dot), else
    as Python prints them."""
    text = repr(value)
    if value and abs(value) < 0.01:
        mantissa, exponent = f"{value:.1e}".split("e")
        text = f"{mantissa}e{int(exponent)}"
    elif "e" in text and "." not in text.split("e")[0]:
        text = text.replace("e", ".0e")
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _flow(value):
    """Lists as inline [a, b] (as params.yaml writes them)."""
    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def _plain(tree):
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    return tree


def demo_recipe_warning(params: dict) -> str | None:
    """A sentence when params point at data of their own but still hold the built-in demo's recipe (every key the
    builtin preset sets but the data's own), else None."""
    if (params.get("data") or {}).get("source", "builtin") == "builtin":
        return None
    demo = {k: v for k, v in leaves(load_preset("builtin")).items() if k[0] not in ("data", "runs")}
    have = leaves(params)
    if any(have.get(k) != v for k, v in demo.items()):
        return None
    return ("params hold the built-in demo's recipe (8 CNN and 16 AST epochs, a 25-step warm-up: sized for generated "
            "clips and a run of minutes) for data of your own: `cmkd preset own-data --manifest ...` sets the recipe "
            "for real data (docs/own-data.md)")
