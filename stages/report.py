"""DVC stage `report`: data/metrics/<run>/*.json for every run in params `runs` -> data/report.md, report.json."""
from pipeline.params import load_params
from pipeline.report import write_report

write_report(load_params())
