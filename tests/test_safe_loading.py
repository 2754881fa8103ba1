"""A file is data, never code: the EfficientAT id map is unpickled data-only, and every torch.load of the library
reads tensors alone (weights_only=True)."""
import ast
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.cache.imported import ImportProblem, read_id_map

ROOT = Path(__file__).resolve().parents[1]


class CreatesAFile:
    """What a hostile pickle looks like: unpickling it calls os.system (here, to create a file)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_a_pickle_that_would_run_code_is_refused_before_any_of_it_runs(tmp_path):
    victim = tmp_path / "created_by_the_pickle"
    with open(tmp_path / "ids.pkl", "wb") as f:
        pickle.dump({"clip-a": 0, "clip-b": CreatesAFile(victim)}, f)
    with pytest.raises(ImportProblem, match=r"ids.pkl: refused: the pickle asks for posix.system"):
        read_id_map(tmp_path / "ids.pkl")
    assert not victim.exists()
    with open(tmp_path / "eval.pkl", "wb") as f:  # any other callable too, builtins included
        f.write(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(ImportProblem, match="builtins.eval"):
        read_id_map(tmp_path / "eval.pkl")


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_plain_maps_load_with_numpy_rows_json_and_csv_too(tmp_path, protocol):
    rows = {"--PJHxphWEs": np.int64(0), "Y0AB_0000_": 1, "other": np.int32(2)}  # EfficientAT writes numpy ints
    with open(tmp_path / "ids.pkl", "wb") as f:
        pickle.dump(rows, f, protocol=protocol)
    assert read_id_map(tmp_path / "ids.pkl") == {"--PJHxphWEs": 0, "Y0AB_0000_": 1, "other": 2}
    (tmp_path / "ids.json").write_text(json.dumps({"a": 1, "b": 0}))
    assert read_id_map(tmp_path / "ids.json") == {"a": 1, "b": 0}
    (tmp_path / "ids.csv").write_text("youtube_id,row\na,1\nb,0\n")
    assert read_id_map(tmp_path / "ids.csv") == {"a": 1, "b": 0}
    (tmp_path / "order.csv").write_text("filename\na.wav\nb.wav\n")  # the ids in row order
    assert read_id_map(tmp_path / "order.csv") == {"a.wav": 0, "b.wav": 1}
    (tmp_path / "list.pkl").write_bytes(pickle.dumps(["a", "b"]))
    with pytest.raises(ImportProblem, match="list.pkl: expected a mapping"):
        read_id_map(tmp_path / "list.pkl")


def test_every_torch_load_of_the_library_is_weights_only():
    calls = []
    for path in (ROOT / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", keywords.get("weights_only")))
    assert calls and all(value == "True" for _, value in calls), [c for c in calls if c[1] != "True"]
