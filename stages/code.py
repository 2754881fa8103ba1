"""DVC stage `code`: the code records (pipeline/codedeps.py) -> results/code/stages/<stage>.json for every stage
that runs the library after the features (the files its script runs, and their sha256), and
results/code/models/<model>.json for each model of params (<model> an architecture, `cnn`, or a direction's role,
`forward-teacher`: the files its family runs, and the content digest of the feature store it reads, from
results/stores/). The stages depend on their records: DVC re-runs one when a file it runs, or its store, changed,
and only then."""
import json
from pathlib import Path

from pipeline import layout
from pipeline.codedeps import write_records
from pipeline.errors import reported
from pipeline.models import check_frontends, family_frontend
from pipeline.settings import DIRECTIONS, load_settings

PARAMS = ("teacher", "student", "models.{teacher}", "models.{student}", "frontends")

if __name__ == "__main__":
    with reported():  # a bad param: its message, no traceback
        settings = load_settings(reads=PARAMS)
        models = {arch: arch for arch in settings.architectures}
        for direction in DIRECTIONS:
            for role in ("teacher", "student"):
                models[f"{direction}-{role}"] = settings.direction(direction).architecture(role)
        names = {arch: settings.models.name(arch) for arch in settings.architectures}
        check_frontends(settings.frontends, names)
        # each model's record carries the content digest of the store it reads (its family's front-end's)
        stores = {arch: json.loads(layout.store_record(family_frontend(name)).read_text())
                  for arch, name in names.items()}
        # the files of this repository (DVC runs the stage in it), whichever copy of the library is installed
        write_records({model: (arch, names[arch]) for model, arch in models.items()}, stores, root=Path.cwd())
