"""The code version every store and checkpoint records: package version, git commit (and whether the work tree
had uncommitted changes), and a hash of the library's own source files, which identifies the code even outside git.
"""
from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=None)
def code_version() -> dict:
    source = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            source.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    try:
        cmkd = version("cmkd")
    except PackageNotFoundError:
        cmkd = None
    return {"cmkd": cmkd, "source_sha256": source.hexdigest(), **_git(PACKAGE.parent)}


def _git(repo: Path) -> dict:
    def git(*args) -> str | None:
        try:
            result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--", "pipeline", "stages")
    return {"git_commit": commit, "git_dirty": bool(status)}
