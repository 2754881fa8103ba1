"""The shape a newcomer relies on: the library's packages import each other without cycles, so the data flows one
way (audio -> features -> teacher -> cache -> student -> report), and the training loop reads top to bottom."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"


def unit_of(module: str) -> str | None:
    """The unit a `pipeline...` module belongs to: its subpackage (pipeline.training) or, at the top, itself."""
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def named_module(node: ast.Call, package: tuple[str, ...], module_name: str) -> str | None:
    """The module an `importlib.import_module(...)` call loads, where its name is written in the call: a string, an
    f-string's leading text (`f"pipeline.models.families.{stem}"`: the package it loads from) or `__name__` plus one
    (`f"{__name__}.families.{stem}"`); None for any other call."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "import_module" or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):
        text = ""
        for part in arg.values:
            if isinstance(part, ast.Constant):
                text += part.value
            elif isinstance(part.value, ast.Name) and part.value.id == "__name__" and not text:
                text += module_name
            else:
                break
        return text.rstrip(".").rsplit(".", 1)[0] if not text.endswith(".") else text.rstrip(".")
    return None


def imports(path: Path) -> set[str]:
    """Every pipeline module `path` imports, at the top or inside functions, relative imports resolved, and every
    one it loads by name with importlib.import_module."""
    package = path.relative_to(ROOT).parent.parts
    module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and (named := named_module(node, package, module_name)):
            found.add(named)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import layout`
    return {name for name in found if name.startswith("pipeline")}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PIPELINE.rglob("*.py"):
        own = unit_of(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))
        if own is None:  # pipeline/__init__.py
            continue
        targets = {unit_of(name) for name in imports(path)} - {None, own}
        graph.setdefault(own, set()).update(t for t in targets if (ROOT / t.replace(".", "/")).exists()
                                            or (ROOT / (t.replace(".", "/") + ".py")).exists())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one unit (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_package_imports_another_that_imports_it_back():
    graph = unit_graph()
    assert {"pipeline.data", "pipeline.training", "pipeline.evaluation", "pipeline.cache"} <= set(graph)
    assert cycles(graph) == [], cycles(graph)
    # the data plane is below what uses it: training, evaluation and the dump read batches from it
    assert "pipeline.data" in graph["pipeline.training"] and "pipeline.data" in graph["pipeline.evaluation"]
    assert not graph["pipeline.data"] & {"pipeline.training", "pipeline.evaluation", "pipeline.cache"}


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_settings_is_a_leaf():
    """params.yaml's reader imports no package of the library: the owners of its sections register with it."""
    assert unit_graph()["pipeline.settings"] <= {"pipeline.errors", "pipeline.runs"}


def test_a_cycle_through_import_module_would_be_found(tmp_path, monkeypatch):
    """A cycle settings -> (by name) models -> settings, planted on a copy of the library, is found."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(PIPELINE, root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    settings = root / "pipeline" / "settings.py"
    settings.write_text(settings.read_text() + '\n\ndef _planted():\n    import importlib\n\n'
                        '    return importlib.import_module("pipeline.models")\n')
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", root)
    monkeypatch.setattr(__import__(__name__, fromlist=["PIPELINE"]), "PIPELINE", root / "pipeline")
    assert ["pipeline.models", "pipeline.settings"] in cycles(unit_graph())


def test_the_training_loop_reads_top_to_bottom_in_under_60_lines():
    tree = ast.parse((PIPELINE / "training" / "loop.py").read_text())
    train = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    assert train.end_lineno - train.lineno + 1 < 60
