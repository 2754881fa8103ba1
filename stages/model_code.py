"""DVC stage `model_code@<arch>`: params models.<arch>.name -> results/code/<arch>.json, the library files the
model's family runs and their sha256 (pipeline/codedeps.py). The stages that build that model depend on this record,
not on every family's file: DVC re-runs them when their family's code changes, and only then."""
import json
import sys

from pipeline.codedeps import family_record
from pipeline.errors import reported
from pipeline.layout import code_record
from pipeline.settings import load_settings

PARAMS = ("models.{arch}",)

if __name__ == "__main__":
    with reported():  # a bad param: its message, no traceback
        arch = sys.argv[1]
        config = load_settings(reads=PARAMS, arch=arch).models[arch]
        out = code_record(arch)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(family_record(arch, config.name), indent=1, sort_keys=True) + "\n")
