"""Which library files a piece of code runs, found by following its imports: what dvc.yaml's code deps must list.

`imports(path)` follows every `import` of the `pipeline` package in a file (top-level and inside functions,
absolute and relative) to the files they load, package `__init__` files included, and on through those files; a
package that imports all its modules as a registry (pipeline/prepare's sources) runs them all. Two things are not
followed, because the code names them at run time: the model family a `models.<key>` uses
(pipeline/models loads it by the model's name) and the modules `importlib` loads by a name in a string.

Stage `code` (stages/code.py) writes what DVC re-runs by: for each stage that runs the library after the features,
`stage_record` (results/code/stages/<stage>.json: every file its script runs, with its sha256), and for each model
of params, `family_record` (results/code/models/<model>.json: the files its family runs) with the content digest of
the feature store it reads. Those stages depend on their records, not on the library's files: a change to a file
re-runs the quick stage `code`, and then exactly the stages whose records it changed (a record written again with
the same content changes nothing). One small file a stage instead of a dozen code deps also keeps dvc.lock small,
which DVC reads and writes again after every stage. tests/test_stage_deps.py checks the records and dvc.yaml.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the folder holding pipeline/ and stages/


def module_file(name: str, root: Path = ROOT) -> Path | None:
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def direct_imports(path: Path, root: Path = ROOT) -> set[Path]:
    """The files of the `pipeline` modules (and their packages) that `path` (below `root`) imports."""
    found = set()
    for name in imported_names(path.read_text(), path.relative_to(root).parent.parts):
        parts = name.split(".")
        if parts[0] == "pipeline":
            found.update(f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i]), root)))
    return found


@functools.lru_cache(maxsize=1024)
def imported_names(text: str, package: tuple[str, ...]) -> tuple[str, ...]:
    """The module names a file's source (in `package`) imports, relative imports made absolute; `from a import b`
    gives a and a.b (b may be a module). Cached by the text: the records parse the same files again and again."""
    names = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]  # `from . import layout`
    return tuple(names)


def registry_modules(path: Path) -> set[Path]:
    """A package whose __init__ imports every module of itself (pipeline/prepare: a registry filled by
    `pkgutil.iter_modules(__path__)`) runs them all when it is imported."""
    if path.name == "__init__.py" and "pkgutil.iter_modules(__path__)" in path.read_text():
        return set(path.parent.glob("*.py"))
    return set()


def imports(path: Path, root: Path = ROOT) -> set[Path]:
    """Every library file running `path` imports, itself included."""
    seen, todo = set(), [Path(path)]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(direct_imports(current, root) | registry_modules(current))
    return seen


def as_deps(files: set[Path]) -> set[str]:
    """Files as dvc.yaml lists them: a subpackage as its folder when every module of it is there, else its modules."""
    deps, by_package = set(), {}
    for path in files:
        parts = path.relative_to(ROOT).parts
        if len(parts) > 2:
            by_package.setdefault("/".join(parts[:2]), set()).add(path)
        else:
            deps.add("/".join(parts))
    for package, found in by_package.items():
        modules = set((ROOT / package).rglob("*.py"))
        deps |= {package} if found >= modules else {str(f.relative_to(ROOT)) for f in found}
    return deps


def family_record(model: str, name: str, root: Path = ROOT) -> dict:
    """What stage `code` writes for `models.<model>` with registered name `name`: its family's file and
    every library file that file runs, with their sha256 (a changed comment changes the record; a change to another
    family's file does not). `root`: the folder holding the library read (this one's by default)."""
    from .models import family_file

    path = family_file(name)
    if path is None:
        raise KeyError(f"models.{model}.name = {name!r}: no family file in pipeline/models/families/ has a name "
                       "that is a word of it")
    path = root / path.relative_to(ROOT)
    families = root / "pipeline/models/families/__init__.py"
    return {"model": model, "name": name, "family": str(path.relative_to(root)),
            "files": {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
                      for f in sorted(imports(path, root) | imports(families, root))}}


def stage_record(script: str, root: Path = ROOT) -> dict:
    """What stage `code` writes for a stage whose command runs `script` (stages/<name>.py): every library file the
    script runs, the script included, with their sha256."""
    return {"script": script, "files": {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
                                        for f in sorted(imports(root / script, root))}}


RECORDED_STAGES = ("train", "evaluate", "pick_teacher", "dump_logits", "train_student",
                   "export", "report")  # the stages after the store (evaluate_student runs stages/evaluate.py)


def write_records(models: dict[str, tuple[str, str]], stores: dict[str, dict], root: Path = ROOT) -> None:
    """What stage `code` writes below `root`: every recorded stage's record, and for each model (a model key of
    results/code/models/, to the (models key, registered name) it is) its family's record with the record of the
    store it reads (`stores`, by models key: its content digest)."""
    import json

    from . import layout

    def write(path: Path, record: dict) -> None:
        path = root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")

    for stage in RECORDED_STAGES:
        write(layout.stage_record(stage), stage_record(f"stages/{stage}.py", root))
    for model, (arch, name) in models.items():
        write(layout.code_record(model), {**family_record(arch, name, root), "store": stores[arch]})
