"""DVC stage `model_code@<model>`: which library files a model's family runs, and their sha256
(pipeline/codedeps.py) -> results/code/<model>.json. <model> is an architecture (`cnn`: models.cnn, trained on
labels) or a direction's role (`forward-teacher`, `reverse-student`: the architecture that plays it). The stages that
build a model depend on its record, not on every family's file: DVC re-runs them when that family's code changes,
and only then. Reading the records needs no model code: the stage is quick, and a record that did not change
re-runs nothing after it."""
import json
import sys

from pipeline.codedeps import family_record
from pipeline.errors import reported
from pipeline.layout import code_record
from pipeline.settings import load_settings

PARAMS = ("teacher", "student", "models.{teacher}", "models.{student}")

if __name__ == "__main__":
    with reported():  # a bad param: its message, no traceback
        model = sys.argv[1]
        settings = load_settings(reads=PARAMS)
        arch = settings.direction(model.split("-")[0]).architecture(model.split("-")[1]) if "-" in model else model
        out = code_record(model)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(family_record(arch, settings.models.name(arch)), indent=1, sort_keys=True) + "\n")
