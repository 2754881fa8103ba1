"""Every `pipeline/...` path the code's docstrings and comments, params.yaml, dvc.yaml, the README and docs/ name
exists: a reader sent to a file finds it. And dvc.lock holds no stage that dvc.yaml no longer has."""
import re

import yaml

from pipeline.codedeps import ROOT

PATH = re.compile(r"(?<![\w/.-])pipeline/[A-Za-z0-9_./-]*[A-Za-z0-9_/]")


def named_paths() -> dict[str, set[str]]:
    """path -> the files that name it."""
    files = [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("stages/*.py"), *ROOT.glob("docs/*.md"),
             ROOT / "README.md", ROOT / "params.yaml", ROOT / "dvc.yaml", *ROOT.glob("pipeline/presets/*.yaml")]
    found = {}
    for f in files:
        for match in PATH.findall(f.read_text()):
            found.setdefault(match.rstrip("/."), set()).add(str(f.relative_to(ROOT)))
    return found


def test_every_named_library_path_exists():
    missing = {path: sorted(where) for path, where in named_paths().items() if not (ROOT / path).exists()}
    assert not missing, f"paths named but not in the tree: {missing}"


def test_dvc_lock_holds_only_stages_dvc_yaml_has():
    import subprocess

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    listed = subprocess.run(["dvc", "stage", "list", "--names-only"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    stale = sorted(set(lock) - set(listed))
    assert not stale, f"dvc.lock holds stages dvc.yaml no longer makes: {stale}"
