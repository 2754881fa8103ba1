"""DVC stage `export@<format>-<direction>-<split>` (params export.formats): the direction's student of each seed ->
data/exports/<split>/<direction>/<format>/seed<k>/ (a graph file or the ecosystem's folder, with its model card)."""
import shutil
import sys
from pathlib import Path

from pipeline import layout
from pipeline.errors import reported
from pipeline.export import export
from pipeline.runs import Run
from pipeline.settings import load_settings

PARAMS = ("seeds", "export")

if __name__ == "__main__":
    with reported():  # a bad param or input file: its message, no traceback
        settings = load_settings(reads=PARAMS)
        fmt, direction, split = sys.argv[1], sys.argv[2], sys.argv[3]
        for seed in settings.seeds:
            run = Run(split, seed)
            checkpoint = layout.checkpoint(layout.student_model(direction), run)
            out = Path("data/exports") / split / direction / fmt / f"seed{seed}"
            shutil.rmtree(out, ignore_errors=True)
            if fmt == "folder":  # the ecosystem folder of the student's family (Hugging Face's for an AST, ...)
                export(checkpoint, out, fmt, command=f"dvc repro export@{fmt}-{direction}-{split}")
            else:
                out.mkdir(parents=True)
                export(checkpoint, out / f"student.{'onnx' if fmt == 'onnx' else 'pt'}", fmt,
                       input_kind=settings.export.input)
