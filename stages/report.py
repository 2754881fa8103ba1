"""DVC stage `report`: data/{teacher,baseline,student}/metrics.json -> data/report.md."""
from pipeline.params import load_params
from pipeline.report import write_report

write_report(load_params())
