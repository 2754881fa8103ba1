"""DVC stage `report`: results/<split>/seed<k>/*/ for every run and seed -> results/report.md, report.json, plots/."""
from pipeline.evaluation.report import write_report
from pipeline.settings import load_settings

if __name__ == "__main__":  # spawned worker processes (Dask's, for one) import this module again
    write_report(load_settings())
