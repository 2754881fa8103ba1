"""DVC stage `report`: results/<split>/seed<k>/*/ for every run and seed -> results/report.md, report.json, plots/."""
from pipeline.evaluation.report import write_report
from pipeline.settings import load_settings

write_report(load_settings())
