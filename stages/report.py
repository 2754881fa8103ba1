"""DVC stage `report`: every run's metrics and test logits, per direction -> results/report.md, report.json,
plots/, figures/."""
from pipeline.errors import reported
from pipeline.evaluation.report import write_report
from pipeline.settings import load_settings

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    with reported():  # a bad param or input file: its message, no traceback
        write_report(load_settings())
