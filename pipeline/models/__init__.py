"""One entry point, `create_model(name, ...)`, over a registry of model families (as in timm).

Every model takes log-mel features [batch, frames, mel_bins] and returns logits [batch, classes]. A model family is
one `Family` object in one file of pipeline/models/families/, registered with `register_family`: its settings class
(the keys `models.<key>` may hold in params.yaml), its named models, the adapter that loads the checkpoints people
have of it, what `cmkd convert` reads, the folder its ecosystem loads, and what a model card and the benchmark say
of it. A new family is a new file there; nothing else names it.

Families are imported when a model of theirs is asked for, and only then: a model's family is the first of the
`_`-separated words of its name that names a file in families/ (`efficientnet_b0` and `tf_efficientnet_b2` in
efficientnet.py, `mobilenetv3_large_100` in mobilenetv3.py). A stage that trains the CNN never imports the AST's
file, so a change there cannot change it (DVC learns which file a `models.<key>` uses from the
records stage `code` writes).
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError, ParamsError
from ..settings import owned_section, validated

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

FAMILIES = Path(__file__).resolve().parent / "families"


class ModelConfig(BaseModel):
    """Keys every model config has: `name` (a registered model), training keys (lr, epochs, pretrained); a family's
    subclass adds the keys its network is built with."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, protected_namespaces=())
    name: str
    lr: float = Field(1.0e-3, gt=0)
    epochs: int = Field(10, ge=1)
    pretrained: str | None = None  # a local weights file (pipeline/models/pretrained.py)

    TRAINING_KEYS: ClassVar[frozenset] = frozenset({"name", "lr", "epochs", "pretrained"})

    def build_kwargs(self) -> dict:
        """What the network is built with: everything but the training keys."""
        return {k: v for k, v in self.model_dump().items() if k not in self.TRAINING_KEYS}


class PretrainedError(InputError, ValueError):
    """A weights file that does not fit the model it is loaded into (pipeline/models/pretrained.py)."""


class Family:
    """Everything about one kind of network. A family file subclasses this, fills `models` and overrides what its
    checkpoints and ecosystem need; the defaults say "not supported" in words a user can act on."""
    name: str = ""                         # its file's name
    kind: str = ""                         # "cnn" or "transformer": what a model card and the bench call it
    config: type[ModelConfig] = ModelConfig
    frontend: str = "fbank"                # the features its models take (pipeline/features/frontend.py)
    folder_format: str | None = None       # `cmkd export --format folder`: the ecosystem folder it writes
    folder_library: str | None = None      # the library that loads that folder (the model card's library_name)
    folder_card: tuple[str, ...] = ()      # what the model card's Input section adds about the folder
    converts: str = ""                     # what `cmkd convert` reads of this family, in words
    card_tags: tuple[str, ...] = ()        # the model card's tags beyond cmkd's own
    bench_models: dict[str, str] = {}      # `cmkd bench --size` tiny | cpu | gpu: the model its training rows time
    bench_batch: dict[str, int] = {}       # ... and its batch there (default: the size's)
    export_models: dict[str, str] = {}     # ... and the one its deployment rows time

    def __init__(self):
        self.models: dict[str, Callable[..., nn.Module]] = {}

    def build(self, name: str, num_classes: int, num_frames: int, num_mel_bins: int, **kwargs) -> nn.Module:
        model = self.models[name](num_classes=num_classes, num_frames=num_frames, num_mel_bins=num_mel_bins, **kwargs)
        model.family = self  # what loads weights into it and exports it (not part of its state)
        return model

    def pretrained_state(self, model: nn.Module, sd: dict[str, torch.Tensor], meta: dict,
                         path: Path) -> dict[str, torch.Tensor]:
        """A weights file's state dict in `model`'s keys and shapes (pipeline/models/pretrained.py loads it)."""
        if "checkpoint" in meta:
            return dict(sd)  # a checkpoint this project wrote
        raise PretrainedError(f"{path}: the {self.name} family reads no weights but cmkd checkpoints of its own")

    def describe_checkpoint(self, sd: dict, meta: dict, path: Path, frames: int | None) -> dict | None:
        """What `cmkd convert` needs to rebuild a model of this family from `sd` (the keys of
        pipeline/models/convert.py), or None when the file is not one of this family's."""
        return None

    def write_folder(self, model: nn.Module, meta, out: Path) -> tuple[Callable, str]:
        """Write `model` as its ecosystem's folder in `out`; returns (a function from the normalised fbank [batch,
        frames, mel bins] to the folder's logits, read back by the ecosystem's own loader, and the line that loads
        it)."""
        raise ValueError(f"{meta.network['name']}: the {self.name} family has no ecosystem folder; export it as ONNX "
                         "or TorchScript")


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Called once by each family file with its Family (its models filled)."""
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} registered twice")
    _FAMILIES[family.name] = family
    return family


def family_names() -> list[str]:
    return sorted(p.stem for p in FAMILIES.glob("*.py") if p.stem != "__init__")


def family_file(name: str) -> Path | None:
    """The file of the family a model name belongs to (by the naming rule above), or None."""
    files = set(family_names())
    stem = next((word for word in name.split("_") if word in files), None)
    return FAMILIES / f"{stem}.py" if stem else None


def family(name: str) -> Family:
    """The family of the model `name`, its file imported on first use."""
    path = family_file(name)
    if path is not None:
        importlib.import_module(f"{__name__}.families.{path.stem}")
        found = _FAMILIES.get(path.stem)
        if found is not None and name in found.models:
            return found
    raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")


def all_families() -> list[Family]:
    """Every family, each file imported (`cmkd models`, `cmkd convert`, the bench)."""
    for stem in family_names():
        importlib.import_module(f"{__name__}.families.{stem}")
    return [_FAMILIES[stem] for stem in sorted(_FAMILIES)]


def list_models() -> list[str]:
    return sorted(name for f in all_families() for name in f.models)


def folder_formats() -> tuple[str, ...]:
    """The ecosystem folders the families write (`cmkd export --format`)."""
    return tuple(sorted({f.folder_format for f in all_families() if f.folder_format}))


def convertible() -> str:
    """What `cmkd convert` reads, in words: each family's."""
    return ", ".join(f.converts for f in all_families() if f.converts)


def frontend_of(name: str) -> str:
    """The front-end the model `name` takes (its family's: pipeline/features/frontend.py)."""
    return family(name).frontend


def family_frontend(name: str) -> str:
    """The front-end the family of model `name` names (its class attribute `frontend`, read from its file without
    importing it: pipeline/features/frontend.py), "fbank" where it names none."""
    path = family_file(name)
    if path is None:
        raise KeyError(f"no family file in pipeline/models/families/ has a name that is a word of {name!r}")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign):
            for target, value in _assigned(node):
                if target == "frontend" and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
    return "fbank"


def _assigned(node: ast.Assign):
    """(name, value) pairs of an assignment, tuples unpacked (`name, frontend = "x", "y"`)."""
    for target in node.targets:
        if isinstance(target, ast.Name):
            yield target.id, node.value
        elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
            yield from ((t.id, v) for t, v in zip(target.elts, node.value.elts) if isinstance(t, ast.Name))


def frontends_needed(names: list[str]) -> list[str]:
    """The front-ends besides the default fbank that models `names` take: what params `frontends` must list (one
    store and stage frontend@<name> each). Read from the family files, none imported (stage code runs it)."""
    return sorted({family_frontend(name) for name in names} - {"fbank"})


def check_frontends(listed: list[str], models: dict[str, str]) -> None:
    """params `frontends` against the models keys -> registered names the params train: exactly their stores."""
    needed = frontends_needed(list(models.values()))
    if sorted(listed) != needed:
        takes = ", ".join(f"models.{key} ({name}) the {family_frontend(name)} front-end"
                          for key, name in models.items())
        raise ParamsError(f"params: 1 problem\n  frontends = {listed}: must be {needed}, the stores besides "
                          f"data/features.zarr that the models read ({takes}); dvc.yaml makes one stage "
                          "frontend@<name> per entry")


def config_class(name: str) -> type[ModelConfig]:
    return family(name).config


def create_model(name: str, num_classes: int, num_frames: int, num_mel_bins: int = 128, **kwargs) -> nn.Module:
    return family(name).build(name, num_classes, num_frames, num_mel_bins, **kwargs)


def build_model(cfg: ModelConfig | dict, num_classes: int, num_frames: int, num_mel_bins: int) -> nn.Module:
    """The network a model config describes (a dict is validated against its family's settings first)."""
    if isinstance(cfg, dict):
        cfg = config_class(cfg["name"]).model_validate(cfg)
    return create_model(cfg.name, num_classes=num_classes, num_frames=num_frames, num_mel_bins=num_mel_bins,
                        **cfg.build_kwargs())


def validate_config(key: str, raw: Any, where: str) -> ModelConfig:
    """params `models.<key>`, validated by its family's settings class (the owner of params `models`)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ParamsError(f"{where}: 1 problem\n  models.{key}: needs a mapping with a `name` (a registered model)")
    try:
        cls = config_class(raw["name"])
    except KeyError as e:
        raise ParamsError(f"{where}: 1 problem\n  models.{key}.name = {raw['name']!r}: {e.args[0]}") from None
    return validated(cls, raw, ("models", key), where)


owned_section("models", validate_config)
