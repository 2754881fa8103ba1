"""The README's "Where one idea lives" table, proved: each row's change made for real on a scratch copy of the
repository (a new model family with its own folder format, a new dataset layout, a new augmentation, a new metric,
a new teaching mode), used there, and checked against the table: the files it had to touch, and the stages
`dvc status` marks once stage code has rewritten the code records.

Each change is undone before the next; the scratch project is tests/dvc_project.py's.
"""
import filecmp
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.codedeps import ROOT

from .dvc_project import CODE, make_project, marked, rewrite_records

pytestmark = pytest.mark.xdist_group("one_place")


def edit(path: Path, anchor: str, new: str) -> None:
    """Replace `anchor` (which must be there, once) by `new` in `path`."""
    text = path.read_text()
    assert text.count(anchor) == 1, f"{path}: the anchor is not there once: {anchor!r}"
    path.write_text(text.replace(anchor, new))


def run_in(work: Path, code: str) -> str:
    """Run `code` with the scratch copy's library (not the installed one); its output."""
    check = "import pipeline, pathlib; assert pathlib.Path(pipeline.__file__).parents[1] == pathlib.Path.cwd()\n"
    done = subprocess.run([sys.executable, "-c", check + textwrap.dedent(code)], cwd=work, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# --- the five changes: each edits the scratch copy, and returns code that uses what it added ---

def new_family(work: Path) -> str:
    (work / "pipeline/models/families/toymlp.py").write_text(textwrap.dedent('''
        """A toy family: the mean frame through a linear layer; its folder is NumPy's .npz."""
        import json

        import numpy as np
        import torch
        import torch.nn as nn

        from .. import Family, register_family


        class ToyMLP(nn.Module):
            def __init__(self, num_classes, num_frames, num_mel_bins=128):
                super().__init__()
                self.head = nn.Linear(num_mel_bins, num_classes)

            def forward(self, x):
                return self.head(x.mean(dim=1))


        class Toy(Family):
            name, kind = "toymlp", "linear"
            folder_format, folder_library = "npz", "numpy"
            folder_card = ("weights.npz holds W and b: logits = mean over frames of the input @ W.T + b.",)
            bench_models = {"tiny": "toymlp_small"}

            def __init__(self):
                super().__init__()
                self.models = {"toymlp_small": ToyMLP}

            def write_folder(self, model, meta, out):
                np.savez(out / "weights.npz", W=model.head.weight.detach().numpy(), b=model.head.bias.detach().numpy())
                (out / "config.json").write_text(json.dumps({"classes": meta.classes}))
                loaded = np.load(out / "weights.npz")
                return (lambda x: x.numpy().mean(axis=1) @ loaded["W"].T + loaded["b"]), "numpy.load(DIR/weights.npz)"


        register_family(Toy())
        ''').lstrip())
    return '''
        from pathlib import Path
        from pipeline.bench.common import random_checkpoint
        from pipeline.export import export, formats
        from pipeline.models import list_models
        assert "toymlp_small" in list_models() and "npz" in formats()
        path = random_checkpoint("toymlp_small", Path("toy.pt"), ["a", "b"], 20, 16, {"mean": -4.0, "std": 4.0})
        report = export(path, Path("toy_folder"), "folder")
        assert report["format"] == "npz" and "weights.npz" in report["files"], report
        assert "library_name: \\"numpy\\"" in Path("toy_folder/README.md").read_text()
        '''


def new_dataset_layout(work: Path) -> str:
    (work / "pipeline/prepare/flat.py").write_text(textwrap.dedent('''
        """One folder of <label>__<name>.wav files (data.source: flat, data.root: the folder)."""
        from pathlib import Path

        from ..manifest import hash_split
        from . import source


        @source("flat")
        def read(data, folder):
            files = sorted(Path(data.root).glob("*.wav"))
            rows = [{"clip_id": f.stem, "path": str(f.resolve()), "labels": [f.stem.split("__")[0]],
                     "split": hash_split(f.stem, data.split.model_dump())} for f in files]
            return rows, sorted({row["labels"][0] for row in rows})
        ''').lstrip())
    return '''
        from pathlib import Path
        import numpy as np, soundfile as sf
        from pipeline.prepare import read_dataset
        from pipeline.validation import settings_from
        from pipeline.settings import read_yaml
        Path("flat").mkdir()
        for i in range(8):
            sf.write(f"flat/{'dog' if i % 2 else 'cat'}__{i}.wav", np.zeros(1600) + 0.1, 16000)
        params = read_yaml(Path("params.yaml"))
        params["data"].update(source="flat", root="flat")
        clips, classes = read_dataset(settings_from(params).data, Path("scratch_raw"))
        assert classes == ["cat", "dog"] and len(clips) == 8
        '''


def new_augmentation(work: Path) -> str:
    augment = work / "pipeline/data/augment.py"
    edit(augment, "    mask_scale: Literal[\"window\", \"clip\"] = \"window\"",
         "    gain: float = Field(0.0, ge=0)     # a level shift of each clip, uniform in -gain..gain\n"
         "    mask_scale: Literal[\"window\", \"clip\"] = \"window\"")
    edit(augment, '"time_start": np.int64, "time_width": np.int64}', '"time_start": np.int64, "time_width": np.int64, '
         '"gain": np.float64}')
    edit(augment, '            "time_start": time_start, "time_width": time_width}',
         '            "time_start": time_start, "time_width": time_width,\n'
         '            "gain": float(rng.uniform(-cfg.gain, cfg.gain)) if cfg.gain else 0.0}')
    edit(augment, "    return x * keep.to(x.dtype)",
         "    return (x + d[\"gain\"].view(b, 1, 1).to(x.dtype)) * keep.to(x.dtype)")
    return '''
        import numpy as np, torch
        from pipeline.data.augment import AugmentSettings, apply, draw_batch
        x = torch.zeros(4, 20, 16)
        plain = AugmentSettings(freq_mask=0, time_mask=0)
        shifted = AugmentSettings(freq_mask=0, time_mask=0, gain=0.5)
        rows = np.arange(4)
        assert torch.equal(apply(x, x, draw_batch(0, rows, plain, 20, 16, rows)), x)
        moved = apply(x, x, draw_batch(0, rows, shifted, 20, 16, rows))
        assert 0 < moved.abs().max() <= 0.5 and (moved.std(dim=(1, 2)) == 0).all()  # one shift a clip
        '''


def new_metric(work: Path) -> str:
    metrics = work / "pipeline/task/metrics.py"
    edit(metrics, 'REPORTED = {"single-label": ("accuracy",),', 'REPORTED = {"single-label": ("accuracy", "top2"),')
    edit(metrics, '    return {"accuracy": headline.accuracy(logits, labels), **_scored(accuracy, classes),',
         '    top2 = float((np.argsort(-logits, axis=1)[:, :2] == truth[:, None]).any(axis=1).mean())\n'
         '    return {"accuracy": headline.accuracy(logits, labels), "top2": top2, **_scored(accuracy, classes),')
    return '''
        import numpy as np
        from pipeline.task import metrics, task_for
        logits, labels = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]]), np.eye(3)[[1, 0]]
        scores = metrics.compute(task_for(False), logits, labels)
        assert scores["accuracy"] == 0.0 and scores["top2"] == 0.5 and "top2" in metrics.reported(task_for(False))
        '''


def new_teaching_mode(work: Path) -> str:
    teaching = work / "pipeline/training/teaching.py"
    online = "    online: bool = False "
    edit(teaching, online, "    hard: bool = False  # the teacher's top class, one-hot (HardTeacher)\n" + online)
    edit(teaching, "class CachedViews(CachedTeacher):", textwrap.dedent('''
        class HardTeacher(CachedTeacher):
            """The cached teacher's top class, one-hot: hard-label distillation."""

            def teacher_probs(self, batch, x, y):
                probs = super().teacher_probs(batch, x, y)
                return torch.nn.functional.one_hot(probs.argmax(dim=-1), probs.shape[-1]).to(probs.dtype)


        class CachedViews(CachedTeacher):''').lstrip())
    edit(teaching, "    mode = CachedViews if cache.views else CachedTeacher",
         "    mode = CachedViews if cache.views else HardTeacher if distill.hard else CachedTeacher")
    return '''
        from types import SimpleNamespace
        import numpy as np, torch
        from pipeline.settings import read_yaml
        from pipeline.task import SingleLabel
        from pipeline.training.teaching import HardTeacher
        from pipeline.validation import settings_from
        from pathlib import Path
        params = read_yaml(Path("params.yaml"))
        params["distill"]["hard"] = True
        assert settings_from(params).distill.hard
        mode = HardTeacher(SimpleNamespace(teacher={}, path="cache"), np.arange(2), 1.0, SingleLabel())
        batch = {"teacher_logits": torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]),
                 "has_teacher": torch.ones(2).bool(), "y": torch.zeros(2, 3)}
        assert torch.equal(mode.teacher_probs(batch, torch.zeros(2, 1), batch["y"]), torch.eye(3)[[1, 0]])
        '''


# row of the README's table -> (the change, the files it touches, the stages it re-runs besides stage code (which
# every library change re-runs, and which alone a new family re-runs), what the README says)
ROWS = {
    "a model family": (new_family, {"pipeline/models/families/toymlp.py"}, {"code"}, set()),
    "a dataset layout": (new_dataset_layout, {"pipeline/prepare/flat.py"}, {"prepare"}, set()),
    "an augmentation": (new_augmentation, {"pipeline/data/augment.py"}, {"train", "dump_logits", "train_student"},
                        set()),
    "a metric": (new_metric, {"pipeline/task/metrics.py"}, {"evaluate", "evaluate_student", "report"}, set()),
    "a teaching mode": (new_teaching_mode, {"pipeline/training/teaching.py"}, {"train", "train_student"}, set()),
}


def readme_rows() -> dict[str, tuple[str, set[str]]]:
    """The table: row -> (its "touch" cell, the stage names of its "re-runs" cell)."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Where one idea lives"):].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        what, touch, reruns = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[what] = (touch, set(re.findall(r"`([a-z_]+)`", reruns)))
    return rows


def changed_files(work: Path) -> set[str]:
    """The library files of the scratch copy that differ from this repository's, or are new there."""
    found = set()
    for path in (work / "pipeline").rglob("*.py"):
        original = ROOT / path.relative_to(work)
        if not original.exists() or not filecmp.cmp(path, original, shallow=False):
            found.add(str(path.relative_to(work)))
    return found


def stage_names(stages: set[str]) -> set[str]:
    return {stage.split("@")[0] for stage in stages}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    work = tmp_path_factory.mktemp("one_place")
    return work, make_project(work)


def test_the_readme_table_is_the_one_checked_here():
    rows = readme_rows()
    assert set(rows) == set(ROWS)
    for what, (_, files, reruns, _) in ROWS.items():
        touch, documented = rows[what]
        named = next(iter(files))
        assert (named in touch) or (str(Path(named).parent) + "/" in touch), (what, touch)
        assert documented == reruns, (what, documented)


@pytest.mark.parametrize("what", list(ROWS))
def test_a_change_touches_one_file_and_reruns_what_the_table_says(project, what):
    work, repo = project
    change, files, reruns, _ = ROWS[what]
    backup = {p: p.read_bytes() for p in (work / "pipeline").rglob("*.py")} | \
        {p: p.read_bytes() for p in (work / "results/code").rglob("*.json")}
    try:
        uses = change(work)
        assert changed_files(work) == files
        rewrite_records(work)  # what stage code, which every library change re-runs, then writes
        assert stage_names(marked(repo)) - CODE == reruns - CODE
        run_in(work, uses)
    finally:
        for path in (work / "pipeline").rglob("*.py"):
            if path not in backup:
                path.unlink()
        for path, content in backup.items():
            path.write_bytes(content)
        for extra in ("toy.pt", "toy_folder", "flat", "scratch_raw"):
            subprocess.run(["rm", "-rf", str(work / extra)], check=True)
    assert marked(repo) == set()
