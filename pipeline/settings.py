"""params.yaml, read once; each section validated where it is read, by the class of the code that owns it.

`load_settings()` is the only reader of params.yaml. A stage passes the keys it reads (`reads`, the same list as its
params in dvc.yaml): the sections among them are validated on first use and any other read is refused, so a stage
can neither depend on a key DVC does not re-run it for nor import code to validate a section it never uses. Without
`reads` (the `cmkd` commands) every section can be read.

An unknown or misspelt key, a wrong type, an unknown choice or an out-of-range value stops with one message that
lists every problem of the section, naming the key, the value and what is allowed (and the closest valid key for a
typo). params.yaml is read as YAML 1.2 (ruamel.yaml, as DVC reads it), so `5e-4` is a number.

The sections defined here are plain values. Three are owned by the code they configure, which registers its
validator when it is imported (`owned_section`): `augment` (pipeline/data/augment.py), `distill`
(pipeline/training/teaching.py, with the teaching modes it switches) and `models.<key>` (pipeline/models, by the
settings class of the family its `name` belongs to). This module imports none of them: it is a leaf of the package
graph, and a stage validates only the sections of the code it runs. `cmkd check-params` (pipeline/validation.py)
imports every owner and checks the whole file.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator
from ruamel.yaml import YAML

from .errors import ParamsError
from .runs import Run, check_split_name

ROLES = ("teacher", "baseline", "student")  # the order reports show them in
DIRECTIONS = ("forward", "reverse")         # forward: teacher -> student as params say; reverse: the other way
PARAMS = Path("params.yaml")

Lenient = Strict(False)  # YAML lists where a fixed-size tuple is wanted


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Split(Section):
    val: float = Field(0.15, ge=0, le=1)
    test: float = Field(0.15, ge=0, le=1)

    @model_validator(mode="after")
    def _leaves_training_clips(self):
        if self.val + self.test >= 1:
            raise ValueError(f"val + test = {self.val + self.test:g} leaves no training clips (must be < 1)")
        return self


class AudioSetFiles(Section):
    train: str | None = None
    val: str | None = None
    test: str | None = None
    class_index: str | None = None


class DataSettings(Section):
    source: str = "builtin"              # a source of pipeline/prepare (checked there, where sources are loaded)
    manifest: str | None = None
    classes: str | None = None
    root: str | None = None
    audioset: AudioSetFiles = Field(default_factory=AudioSetFiles)
    multi_label: bool = False
    split: Split = Field(default_factory=Split)
    seed: int = 0                        # the built-in dataset's generator
    num_classes: int = Field(10, ge=1, le=24)
    clips_per_class: int = Field(60, ge=1)
    clip_seconds: float = Field(2.0, gt=0)
    sample_rate: int = Field(16000, gt=0)
    max_events: int = Field(3, ge=1)
    snr_db: Annotated[tuple[float, float], Lenient] = (3.0, 20.0)

    @model_validator(mode="after")
    def _source_has_its_inputs(self):
        if self.source == "manifest" and not self.manifest:
            raise ValueError("source is 'manifest' but data.manifest names no file")
        if self.source in ("esc50", "fsd50k", "folders") and not self.root:
            raise ValueError(f"source is {self.source!r} but data.root names no folder")
        files = self.audioset
        if self.source == "audioset" and not (files.class_index and (files.train or files.test)):
            raise ValueError("source is 'audioset' but data.audioset names no class_index or no train/test file")
        return self


class FeatureSettings(Section):
    sample_rate: int = Field(16000, gt=0)
    num_mel_bins: int = Field(128, ge=16)
    frame_shift_ms: float = Field(10.0, gt=0)
    frame_length_ms: float = Field(25.0, gt=0)
    target_frames: Annotated[int, Field(ge=16)] | Literal["auto"] = "auto"  # auto: from the clips (length.py)
    clips_per_shard: int = Field(64, ge=1)
    workers: int = Field(2, ge=1)
    scheduler: Literal["threads", "processes", "synchronous", "distributed"] = "threads"
    address: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"       # where the fbank runs (auto: the GPU if there is one)
    precision: Literal["float64", "float32"] = "float64"  # float64: the same stored values on any machine
    on_error: Literal["fail", "skip"] = "fail"

    def fbank_params(self) -> dict:
        """What the features' values depend on (the store's fingerprint covers these, not the scheduling)."""
        return self.model_dump(include={"sample_rate", "num_mel_bins", "frame_shift_ms", "frame_length_ms",
                                        "target_frames"})


class TrainSettings(Section):
    batch_size: int = Field(16, ge=1)
    weight_decay: float = Field(5.0e-7, ge=0)
    betas: Annotated[tuple[float, float], Lenient] = (0.95, 0.999)
    warmup_steps: int = Field(100, ge=0)
    schedule: Literal["step", "cosine"] = "step"   # step: x lr_decay every lr_decay_every epochs from lr_decay_start
    lr_decay_start: int = Field(15, ge=0)          # (the AST/PSLA recipes); cosine: to 0 at each model's last epoch
    lr_decay: float = Field(0.8, gt=0, le=1)
    lr_decay_every: int = Field(1, ge=1)
    bn_stats: Literal["running", "recomputed"] = "recomputed"  # a BatchNorm's statistics measured afresh on clean
                                                                # training clips before each validation and save
    balanced_sampling: bool = False
    average_last: int = Field(0, ge=0)
    ensemble_last: int = Field(0, ge=0)
    select: Literal["last", "best"] = "last"
    num_workers: int = Field(0, ge=0)
    resident: Literal["auto", True, False] = "auto"
    channels_last: bool = True
    compile: bool = False

    @model_validator(mode="after")
    def _one_way_to_pick_the_model(self):
        if self.select == "best" and (self.average_last or self.ensemble_last):
            raise ValueError("select is 'best' but average_last or ensemble_last is set: the model kept is one "
                             "epoch's (best) or the last epochs' (averaged or ensembled), not both")
        return self


class ImportedPredictions(Section):
    """dump.source: import -- teacher predictions made elsewhere (pipeline/cache/imported.py)."""
    path: str | None = None            # the predictions: .npy (EfficientAT), .h5/.hdf5 (CED), .csv or .parquet
    format: Literal["auto", "npy", "hdf5", "csv", "parquet"] = "auto"  # auto: from the extension
    index: str | None = None           # npy: pickle {id: row}; hdf5: CSV of file names (column filename) in row
                                       # order, unless the HDF5 holds a `filenames` dataset
    outputs: Literal["logits", "probabilities"] = "logits"  # what the file holds (CED: probabilities)
    classes: str | None = None         # the file's class order: AudioSet's class_labels_indices.csv or one name a
                                       # line (npy, hdf5); a CSV/Parquet names its class columns itself
    teacher: str = "unknown"           # the model that made them, recorded as provenance


class DumpSettings(Section):
    source: Literal["teacher", "import"] = "teacher"  # import: dump.imported's file instead of running a teacher
    imported: ImportedPredictions = Field(default_factory=ImportedPredictions)
    batch_size: int = Field(64, ge=1)
    clips_per_shard: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    views: int = Field(0, ge=0)
    top_k: int = Field(0, ge=0)
    extra_teachers: list[str] = []
    cross_fit: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _parts_list_the_teachers(self):
        if self.cross_fit == 1:
            raise ValueError("cross_fit = 1 would train a teacher on no clips: 0 (off) or k >= 2")
        if self.source == "import" and not self.imported.path:
            raise ValueError("source import needs imported.path (the predictions file)")
        if self.source == "import" and (self.views or self.cross_fit or self.extra_teachers):
            raise ValueError("source import takes the file's predictions as they are: no views, cross_fit or "
                             "extra_teachers")
        if self.cross_fit and self.extra_teachers:
            raise ValueError("cross_fit and extra_teachers cannot be combined (each training clip's target must come "
                             "from a teacher that never trained on it)")
        return self


class ExportSettings(Section):
    """Stage `export` (off while `formats` is empty): every run's students exported next to the report."""
    formats: list[Literal["onnx", "torchscript", "folder"]] = []  # folder: the ecosystem folder of its family
    input: Literal["features", "waveform"] = "waveform"             # what the onnx / torchscript graphs take

    @model_validator(mode="after")
    def _once_each(self):
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("formats lists a format twice")
        return self


class DistributedSettings(Section):
    nproc_per_node: int = Field(1, ge=1)
    nnodes: int = Field(1, ge=1)
    rdzv_endpoint: str = "localhost:29500"
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    sync_batchnorm: bool = True

    @model_validator(mode="after")
    def _endpoint_for_several_nodes(self):
        if self.nnodes > 1 and ":" not in self.rdzv_endpoint:
            raise ValueError(f"rdzv_endpoint {self.rdzv_endpoint!r} must be host:port when nnodes > 1")
        return self


def _split_name(split: str) -> str:
    check_split_name(split)
    return split


MODEL_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class Plan(Section):
    """The top-level keys: which runs and seeds, which two architectures (keys of models), which directions."""
    runs: list[Annotated[str, AfterValidator(_split_name)]] = ["main"]
    seeds: list[int] = Field([0], min_length=1)
    teacher: str = "cnn"
    student: str = "ast"
    directions: list[Literal["forward", "reverse"]] = Field(["forward"], min_length=1)
    frontends: list[str] = []  # the stores besides data/features.zarr the models read (one stage frontend@ each)
    models: list[str] = []  # the keys of models (their configurations are validated by their families)

    @model_validator(mode="after")
    def _roles_and_runs(self):
        for key in self.models:
            if not MODEL_KEY.fullmatch(key) or key in DIRECTIONS:
                raise ValueError(f"models.{key}: a model key names a folder of each run: letters, digits and _, "
                                 f"starting with a letter, and not {' or '.join(DIRECTIONS)}")
        for role in ("teacher", "student"):
            if getattr(self, role) not in self.models:
                raise ValueError(f"{role}: {getattr(self, role)!r} is not a key of models "
                                 f"(have {', '.join(sorted(self.models))})")
        if self.teacher == self.student:
            raise ValueError(f"teacher and student are both {self.teacher!r}: each is trained on labels once per run "
                             "(the student's is its baseline); for self-distillation give the same model a second "
                             "key under models")
        if len(set(self.runs)) != len(self.runs) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("runs and seeds must not repeat an entry")
        if len(set(self.directions)) != len(self.directions):
            raise ValueError("directions must not repeat an entry")
        if "fbank" in self.frontends or len(set(self.frontends)) != len(self.frontends):
            raise ValueError("frontends lists the stores besides data/features.zarr (fbank's), each once")
        return self


SECTIONS: dict[str, type[BaseModel] | None] = {  # params.yaml's sections; None: validated by the owner's class
    "runs": Plan, "seeds": Plan, "teacher": Plan, "student": Plan, "directions": Plan, "frontends": Plan,
    "data": DataSettings, "features": FeatureSettings, "models": None, "augment": None, "train": TrainSettings,
    "distill": None, "dump": DumpSettings, "export": ExportSettings, "distributed": DistributedSettings,
}
PLAN_KEYS = ("runs", "seeds", "teacher", "student", "directions", "frontends")

MOVED = {  # keys that moved or went, with where to look instead
    ("train", "epochs"): "each model sets its own: models.<key>.epochs",
    ("dump", "time_shift"): "the augmentation has its own section: augment.time_shift",
    ("features", "fbank"): "cmkd computes the Kaldi fbank itself: features.device (auto: the GPU if there is one) "
                           "and features.precision (float64)",
    **{("train", key): f"the augmentation has its own section: augment.{key}"
       for key in ("freq_mask", "time_mask", "time_shift", "mixup", "mixup_alpha", "mask_scale")},
    ("seed",): "seeds: [0, 1, ...] (training), data.seed (the built-in dataset)",
    ("dump", "cross_fit_parts"): "stage train trains dump.cross_fit's k part teachers itself",
}

_OWNED: dict[str, Callable[[str, Any, str], Any]] = {}  # section -> its owner's validator


def owned_section(name: str, validate: Callable[[str, Any, str], Any]) -> None:
    """Called by the module that owns section `name` (augment, distill, models) when it is imported: its validator
    of one raw value (the section, or one `models.<key>` entry) as validate(key, value, where), raising ParamsError."""
    if SECTIONS.get(name, ...) is not None:
        raise ValueError(f"params section {name!r} is not one an owner validates")
    _OWNED[name] = validate


@dataclass(frozen=True)
class Direction:
    """One distillation: `teacher` (a models key) teaches `student`. In each run both architectures are trained on
    labels once (pipeline/training/jobs.py): that model of the teacher's architecture is this direction's teacher,
    the one of the student's architecture its baseline, and with both directions each is the other's too."""
    name: str      # forward | reverse
    teacher: str
    student: str

    def architecture(self, role: str) -> str:
        """The models key `role` has in this direction (the baseline: the student's architecture without KD)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        return self.teacher if role == "teacher" else self.student

    def __str__(self) -> str:
        return f"{self.teacher} -> {self.student}"


class UndeclaredRead(RuntimeError):
    """A stage read a params key it does not declare: DVC would not re-run it when that key changes."""


class Partial:
    """A section of which a stage reads some keys only (`data.multi_label`): those keys, nothing else."""

    def __init__(self, section: BaseModel, name: str, keys: set[str]):
        self._section, self._name, self._keys = section, name, keys

    def __getattr__(self, key: str):
        if key.startswith("_"):
            raise AttributeError(key)
        if key not in self._keys:
            raise UndeclaredRead(f"reads params {self._name}.{key}, which this stage does not declare (it reads "
                                 f"{', '.join(sorted(f'{self._name}.{k}' for k in self._keys))})")
        return getattr(self._section, key)


class Models:
    """params `models`: its keys, and each configuration validated by its family when first read."""

    def __init__(self, settings: "Settings", raw: dict):
        self._settings, self._raw, self._valid = settings, raw, {}

    def keys(self):
        return self._raw.keys()

    def __iter__(self):
        return iter(self._raw)

    def __contains__(self, key) -> bool:
        return key in self._raw

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, key: str):
        self._settings._check_read(f"models.{key}")
        if key not in self._raw:
            raise KeyError(key)
        if key not in self._valid:
            self._valid[key] = self._settings._owner("models")(key, self._raw[key], self._settings._where)
        return self._valid[key]

    def name(self, key: str) -> str:
        """The registered model `models.<key>` names, read without validating the rest of its configuration (which
        would import its family's code)."""
        self._settings._check_read(f"models.{key}")
        entry = self._raw.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ParamsError(f"{self._settings._where}: 1 problem\n  models.{key}: needs a mapping with a `name` "
                              "(a registered model)")
        return entry["name"]

    def items(self):
        return [(key, self[key]) for key in self._raw]

    def values(self):
        return [self[key] for key in self._raw]


class Settings:
    """params.yaml as one stage sees it: sections validated on first read, reads outside `reads` refused."""

    def __init__(self, raw: dict, where: str = "params", reads: tuple[str, ...] | None = None, **item: str):
        if not isinstance(raw, dict):
            raise ParamsError(f"{where}: expected a mapping of sections, got {type(raw).__name__}")
        self._raw, self._where, self._sections = raw, where, {}
        problems = [_describe((), {"type": "extra_forbidden", "loc": (key,), "msg": "", "input": None}, None)
                    for key in raw if key not in SECTIONS]
        if "models" not in raw:
            problems.append("models: missing (required: a configuration per architecture, e.g. cnn: {name: "
                            "efficientnet_test} and ast: {name: ast_test})")
        elif not isinstance(raw["models"] or {}, dict):
            problems.append(f"models: expected a mapping of model configurations (cnn: {{name: ...}}), got "
                            f"{type(raw['models']).__name__}")
        raise_problems(problems, where)
        self.models = Models(self, raw["models"] or {})
        self._reads = None if reads is None else {key.format(**item, **self._named_models()) for key in reads}

    @property
    def where(self) -> str:
        """What the params came from (a file's path), as every message about them names it."""
        return self._where

    def _named_models(self) -> dict:
        """{teacher} and {student} in a declared key: the models keys they name (read as `teacher`, `student`)."""
        return {role: self._raw.get(role, Plan.model_fields[role].default) for role in ("teacher", "student")}

    # --- reading ---
    def _check_read(self, key: str) -> None:
        if self._reads is None or key in self._reads or key.split(".")[0] in self._reads:
            return
        raise UndeclaredRead(f"reads params {key}, which this stage does not declare (declared: "
                             f"{', '.join(sorted(self._reads))}): add it to the stage's PARAMS and its params in "
                             "dvc.yaml")

    def _owner(self, name: str) -> Callable:
        if name not in _OWNED:  # a bug: the code that reads a section imports the module that owns it
            raise RuntimeError(f"params section {name!r} is read, but the module that owns it has not been imported "
                               "(it registers its validator on import: pipeline.settings.owned_section)")
        return _OWNED[name]

    def _section(self, name: str):
        cached = "plan" if name in PLAN_KEYS else name
        if cached not in self._sections:
            if SECTIONS[name] is None:
                self._sections[cached] = self._owner(name)(name, self._raw.get(name) or {}, self._where)
            elif name in PLAN_KEYS:
                raw = {**{k: self._raw[k] for k in PLAN_KEYS if k in self._raw}, "models": list(self.models.keys())}
                self._sections[cached] = validated(Plan, raw, (), self._where)
            else:
                self._sections[cached] = validated(SECTIONS[name], self._raw.get(name) or {}, (name,), self._where)
        return self._sections[cached]

    def _read(self, name: str):
        if self._reads is not None and name not in self._reads:
            keys = {k.split(".", 1)[1] for k in self._reads if k.startswith(name + ".")}
            if keys:
                return Partial(self._section(name), name, keys)
        self._check_read(name)
        section = self._section(name)
        return getattr(section, name) if name in PLAN_KEYS else section

    runs = property(lambda self: self._read("runs"))
    seeds = property(lambda self: self._read("seeds"))
    teacher = property(lambda self: self._read("teacher"))
    student = property(lambda self: self._read("student"))
    directions = property(lambda self: self._read("directions"))
    frontends = property(lambda self: self._read("frontends"))
    data = property(lambda self: self._read("data"))
    features = property(lambda self: self._read("features"))
    augment = property(lambda self: self._read("augment"))
    train = property(lambda self: self._read("train"))
    distill = property(lambda self: self._read("distill"))
    dump = property(lambda self: self._read("dump"))
    export = property(lambda self: self._read("export"))
    distributed = property(lambda self: self._read("distributed"))

    # --- what the sections say together ---
    def direction(self, name: str = "forward") -> Direction:
        if name not in DIRECTIONS:
            raise ValueError(f"unknown direction {name!r}; expected one of {', '.join(DIRECTIONS)}")
        return Direction(name, self.teacher, self.student) if name == "forward" else \
            Direction(name, self.student, self.teacher)

    def model(self, role: str, direction: str = "forward"):
        """The model config `role` trains in `direction`."""
        return self.models[self.direction(direction).architecture(role)]

    def all_directions(self) -> list[Direction]:
        return [self.direction(name) for name in self.directions]

    @property
    def architectures(self) -> list[str]:
        """The models keys trained on labels in every run: the teacher's and the student's."""
        return [self.teacher, self.student]

    def all_runs(self) -> list[Run]:
        return [Run(split, seed) for split in self.runs for seed in self.seeds]

    def as_params(self) -> dict:
        """The params tree as params.yaml holds it (for writing a changed copy)."""
        import copy

        return copy.deepcopy(self._raw)


def validated(cls: type[BaseModel], raw: Any, prefix: tuple, where: str):
    """`raw` validated by `cls`; every problem, by key, in one ParamsError."""
    if prefix and raw is not None and not isinstance(raw, dict):
        raise_problems([f"{'.'.join(prefix)}: expected a mapping, got {type(raw).__name__}"], where)
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        raise_problems([_describe(prefix, err, cls) for err in e.errors()], where)


def raise_problems(problems: list[str], where: str) -> None:
    if problems:
        raise ParamsError(f"{where}: {len(problems)} problem{'s' if len(problems) > 1 else ''}\n  "
                          + "\n  ".join(problems))


def problem_lines(error: ParamsError) -> list[str]:
    return [line.strip() for line in str(error).splitlines()[1:]]


def read_yaml(path: Path) -> dict:
    from ruamel.yaml import YAMLError

    try:
        with open(path, encoding="utf-8") as f:
            return YAML(typ="safe", pure=True).load(f) or {}
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ParamsError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text ({e})") from None


def load_settings(path: str | Path = PARAMS, reads: tuple[str, ...] | None = None, **item: str) -> Settings:
    """params.yaml as a stage reads it: `reads` the keys it may read ("models.{arch}" formatted with `item`, and
    "{teacher}", "{student}" with the models keys params names), None for every key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found")
    return Settings(read_yaml(path), str(path), reads, **item)


def _describe(prefix: tuple, err: dict, root: type[BaseModel] | None) -> str:
    """One line for one validation error: the dotted key, the value, and what is allowed."""
    loc = err["loc"]
    key = ".".join(str(part) for part in (*prefix, *loc))
    full = tuple(map(str, (*prefix, *loc)))
    if err["type"] == "extra_forbidden" and full in MOVED:
        return f"{key}: no longer a key ({MOVED[full]})"
    if err["type"] == "extra_forbidden":
        allowed = list(SECTIONS) if root is None else _keys_under(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {'.'.join(str(p) for p in (*prefix, *loc[:-1], close[0]))}?" if close else \
            f"allowed here: {', '.join(sorted(allowed))}"
        return f"{key}: unknown key ({hint})"
    if err["type"] == "missing":
        return f"{key}: missing (required)"
    message = err["msg"].removeprefix("Value error, ")
    shown = err.get("input")
    if not key:  # a check across keys: its message names them
        return message
    return f"{key}: {message}" if isinstance(shown, dict) or not loc else f"{key} = {shown!r}: {message}"


def _keys_under(root: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed in the section at `loc` below `root` (for the closest match to a typo)."""
    node = root
    for part in loc:
        field = next((f for name, f in node.model_fields.items() if part in (name, f.alias)), None)
        node = field.annotation if field is not None else None
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return []
    return [f.alias or name for name, f in node.model_fields.items()]
