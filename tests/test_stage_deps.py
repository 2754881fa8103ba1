"""dvc.yaml's code deps are exactly the library modules each stage runs, so `dvc repro` reruns a stage whenever its
code changes, and only then. The modules are found by following the imports (top-level and inside functions) from
the stage's script through `pipeline`; a subpackage (pipeline/models, pipeline/training, ...) is listed as its
folder when the stage runs every module of it, else as the modules it runs (the params validation reads
pipeline/data/augment.py, and the features stage must not rerun when pipeline/data/batches.py changes).
"""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def imported_files(path: Path) -> set[Path]:
    """The files of the `pipeline` modules (and their packages) that `path` imports."""
    package = path.relative_to(ROOT).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]  # `from . import layout`
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "pipeline":
                found.update(f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i]))))
    return found


def registry_modules(path: Path) -> set[Path]:
    """A package whose __init__ imports every module of itself (pipeline/models, pipeline/prepare: a registry
    filled by `pkgutil.iter_modules(__path__)`) runs them all when it is imported."""
    if path.name == "__init__.py" and "pkgutil.iter_modules(__path__)" in path.read_text():
        return set(path.parent.glob("*.py"))
    return set()


def code_deps(script: Path) -> set[str]:
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path) | registry_modules(path))
    deps, by_package = set(), {}
    for path in seen - {script}:
        parts = path.relative_to(ROOT).parts
        if len(parts) > 2:
            by_package.setdefault("/".join(parts[:2]), set()).add(path)
        else:
            deps.add("/".join(parts))
    for package, files in by_package.items():  # the folder if every module of it runs, else the modules
        modules = set((ROOT / package).rglob("*.py"))
        deps |= {package} if files >= modules else {str(f.relative_to(ROOT)) for f in files}
    return deps


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_lists_exactly_the_code_it_runs(name):
    stage = STAGES[name].get("do", STAGES[name])
    script = stage["cmd"].split()[1]
    deps = {d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]}
    listed = {d for d in deps if d.startswith("pipeline")}
    assert script in deps, f"{name}: its script {script} is not a dep"
    needed = code_deps(ROOT / script)
    assert not needed - listed, f"{name}: runs {sorted(needed - listed)} but dvc.yaml does not list them"
    assert not listed - needed, f"{name}: lists {sorted(listed - needed)}, which it never imports"


def test_import_walk_follows_function_level_and_relative_imports():
    deps = code_deps(ROOT / "stages" / "train_student.py")
    assert {"pipeline/training/loop.py", "pipeline/stores/features.py", "pipeline/models", "pipeline/layout.py",
            "pipeline/settings.py", "pipeline/data"} <= deps
    assert "pipeline/bench.py" not in deps and "pipeline/audit.py" not in deps
    assert "pipeline/training/adopt.py" not in deps  # only the stage train@<arch> adopts ready teachers
    features = code_deps(ROOT / "stages" / "features.py")
    assert "pipeline/data/augment.py" in features and "pipeline/data/batches.py" not in features
