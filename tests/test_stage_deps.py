"""dvc.yaml's code deps are exactly the library modules each stage runs, so `dvc repro` reruns a stage whenever its
code changes, and only then. The modules are found by following the imports (top-level and inside functions) from
the stage's script through `pipeline`; a subpackage (pipeline/models, pipeline/training, ...) is listed as its
folder.
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


def code_deps(script: Path) -> set[str]:
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path))
    deps = set()
    for path in seen - {script}:
        parts = path.relative_to(ROOT).parts
        deps.add("/".join(parts[:2]) if len(parts) > 2 else "/".join(parts))  # a subpackage: its folder
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
    assert {"pipeline/training", "pipeline/stores", "pipeline/models", "pipeline/layout.py",
            "pipeline/settings.py"} <= deps
    assert "pipeline/bench.py" not in deps and "pipeline/audit.py" not in deps
