"""The library's shape, for a newcomer to check: `python -m tests.shape` lists the modules of pipeline/ over 300
lines and the functions over 60 lines (what a reader cannot take in at once), longest first."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"
MODULE_LINES, FUNCTION_LINES = 300, 60


def long_modules(root: Path = PIPELINE, limit: int = MODULE_LINES) -> list[tuple[int, str]]:
    found = [(len(p.read_text().splitlines()), str(p.relative_to(root.parent))) for p in root.rglob("*.py")]
    return sorted((n, name) for n, name in found if n > limit)[::-1]


def long_functions(root: Path = PIPELINE, limit: int = FUNCTION_LINES) -> list[tuple[int, str]]:
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(root.parent)}:{node.name}"))
    return sorted(r for r in found if r[0] > limit)[::-1]


def main() -> int:
    root = Path(sys.argv[1]) / "pipeline" if len(sys.argv) > 1 else PIPELINE
    modules, functions = long_modules(root), long_functions(root)
    print(f"modules over {MODULE_LINES} lines: {len(modules)}")
    print("".join(f"  {n:5d}  {name}\n" for n, name in modules), end="")
    print(f"functions over {FUNCTION_LINES} lines: {len(functions)}")
    print("".join(f"  {n:5d}  {name}\n" for n, name in functions), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
