"""DVC stage `report`: every run's metrics and test logits, per direction -> results/report.md, report.json,
plots/, figures/."""
from pipeline.errors import reported
from pipeline.evaluation.report import write_report
from pipeline.settings import load_settings

PARAMS = ("runs", "seeds", "teacher", "student", "directions")

if __name__ == "__main__":
    with reported():  # a bad param or input file: its message, no traceback
        write_report(load_settings(reads=PARAMS))
