"""`cmkd compare`: experiments from `dvc exp show --json`, the pick made on validation scores alone."""
import json

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.evaluation.compare import choose, experiments


def report(val: float, test: float) -> dict:
    gain = {"mean": test - 0.5, "ci95_low": test - 0.55, "ci95_high": test - 0.45, "runs": 2, "over": "test clips"}
    return {"metric": "accuracy", "runs": 2, "forward": {
        "metric": "accuracy", "teacher": "cnn", "student": "ast", "validation": {"student": val},
        "mean": {"teacher": {"accuracy": 0.6}, "baseline": {"accuracy": 0.5}, "student": {"accuracy": test}},
        "student_minus_baseline": gain, "student_minus_teacher": gain}}


def exp(name: str, tau: float, val: float, test: float) -> dict:
    return {"rev": name * 4, "name": name, "data": {
        "params": {"params.yaml": {"data": {"distill": {"tau": tau, "lambda": 0.5}, "runs": ["fold1"]}}},
        "metrics": {"results/report.json": {"data": report(val, test)}}}}


SHOWN = [{"rev": "workspace", **{k: v for k, v in exp("workspace", 4.0, 0.60, 0.60).items() if k != "rev"}},
         {"rev": "a" * 40, "data": exp("main", 4.0, 0.60, 0.60)["data"], "experiments": [
             {"revs": [exp("tau1", 1.0, 0.70, 0.55)]}, {"revs": [exp("tau2", 2.0, 0.65, 0.75)]}]}]


def test_the_pick_is_made_on_validation_and_reported_with_its_test_interval(tmp_path):
    found = experiments(SHOWN)
    # a commit by its short rev; the workspace, the same params and results as that commit, once
    assert [e.name for e in found] == ["aaaaaaa", "tau1", "tau2"]
    changed = json.loads(json.dumps(SHOWN))
    changed[0]["data"]["params"]["params.yaml"]["data"]["distill"]["tau"] = 8.0
    assert [e.name for e in experiments(changed)] == ["workspace", "aaaaaaa", "tau1", "tau2"]
    rows, pick = choose(found, "forward")
    assert pick["experiment"] == "tau1"  # best on validation, though tau2 scores higher on test
    assert [r["experiment"] for r in rows][:2] == ["tau1", "tau2"] and pick["params"] == {"distill.tau": 1.0}
    (tmp_path / "shown.json").write_text(json.dumps(SHOWN))
    result = CliRunner().invoke(app, ["compare", "--from", str(tmp_path / "shown.json")])
    assert result.exit_code == 0, result.output
    assert "validation picks tau1 (distill.tau=1.0): test accuracy 0.5500" in " ".join(result.output.split())
