"""`cmkd`: the pipeline's steps as commands (each DVC stage runs the same library function)."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from . import layout
from .params import ROLES, load_params

app = typer.Typer(help="CNN/Transformer cross-model knowledge distillation for audio. "
                       "`dvc repro` runs every step in order; these commands run one.", no_args_is_help=True)
console = Console()
PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="the params file", exists=True, dir_okay=False)


RUN = typer.Option(None, "--run", "-r", help="which run (main, fold1, ...); default: the first of params `runs`")


def _run(run: str | None, params: dict) -> str:
    return run or params["runs"][0]


def _role(role: str) -> str:
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    return role


@app.command()
def prepare(params: Path = PARAMS):
    """The dataset as data/raw/manifest.csv + classes.txt: synthesized (built-in) or imported from your manifest."""
    from .prepare import prepare as prepare_data

    prepare_data(load_params(params))


@app.command()
def features(params: Path = PARAMS):
    """Kaldi fbank for every clip of data/raw/manifest.csv into data/features.zarr (Dask, resumable)."""
    from .features import extract_features

    p = load_params(params)
    extract_features(layout.MANIFEST, layout.CLASSES, layout.FEATURES, p["features"], p["data"]["multi_label"],
                     skipped_list=layout.SKIPPED)


@app.command()
def train(role: str = typer.Argument(..., callback=_role, help="teacher, student or baseline"),
          params: Path = PARAMS, run: str = RUN):
    """Train the teacher, the CMKD student (from cached predictions) or the no-KD baseline."""
    from .train import train as train_role

    p = load_params(params)
    console.print(train_role(role, p, _run(run, p)))


@app.command()
def evaluate(role: str = typer.Argument(..., callback=_role, help="teacher, student or baseline"),
             params: Path = PARAMS, run: str = RUN):
    """Test-split metrics of data/runs/<run>/<role>/checkpoint.pt into data/metrics/<run>/<role>.json."""
    from .evaluate import evaluate as evaluate_role

    console.print(evaluate_role(role, _run(run, load_params(params))))


@app.command()
def dump(params: Path = PARAMS, run: str = RUN):
    """The frozen teacher's logits for every clip into data/runs/<run>/teacher_predictions.zarr (resumable)."""
    from .dump import dump_from_params

    p = load_params(params)
    dump_from_params(p, _run(run, p))


@app.command()
def report(params: Path = PARAMS):
    """Compare teacher, baseline and student, per run and averaged, in data/report.md and report.json."""
    from .report import write_report

    console.print(write_report(load_params(params)))


@app.command()
def bench(size: str = typer.Option("cpu", help="tiny | cpu (small models, 500 frames) | gpu (AST-base and "
                                                "EfficientNet-B2 at 1024 frames)"),
          out: Path = typer.Option(Path("bench.json"), help="where the figures go as JSON"),
          compile: bool = typer.Option(False, "--compile", help="also time the torch.compile'd training step"),
          workdir: Path = typer.Option(None, help="keep the benchmark's workspace here (default: a temp folder)"),
          clips: int = typer.Option(None, help="override the size's number of clips"),
          workers: int = typer.Option(None, help="override the size's Dask and loader worker count"),
          repeats: int = typer.Option(None, help="override the size's rounds of training measurements (median)")):
    """Throughput of extraction, store reads, the teacher dump and student training (pure, cached, online)."""
    from .bench import SIZES, print_table, run_bench

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}")
    overrides = {k: v for k, v in {"clips": clips, "workers": workers, "repeats": repeats}.items() if v is not None}
    report = run_bench(size, out, workdir, compile, overrides=overrides)
    print_table(report, console)
    console.print(f"figures written to {out}")


@app.command()
def inspect(path: Path = typer.Argument(..., help="a feature store, prediction store, checkpoint or metrics file"),
            clip: str = typer.Option(None, help="also show this clip: its features and the teacher's top predictions"),
            as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables")):
    """Audit an artifact: shapes, chunking, size, value statistics, classes, provenance; for cached predictions
    also the teacher's metrics recomputed from the cache, its calibration and the classes it confuses most."""
    import json

    from .audit import inspect_path, render

    report = inspect_path(path, clip)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        render(report, console)


@app.command()
def preset(name: str = typer.Argument(..., help="esc50 | fsd50k | audioset (pipeline/presets)"),
           root: Path = typer.Option(None, help="the dataset's folder in its official layout (sets data.root)"),
           set_values: list[str] = typer.Option(None, "--set", help="KEY=VALUE on top of the preset, e.g. "
                                                "models.cnn.name=efficientnet_test (repeatable; VALUE is YAML)"),
           params: Path = PARAMS):
    """Switch params.yaml to a paper recipe in place (comments and other values kept); then run `dvc repro`."""
    import yaml

    from .presets import apply, load_preset, merged

    overrides = load_preset(name)
    if root is not None:
        if not root.is_dir():
            raise typer.BadParameter(f"{root}: not a folder", param_hint="--root")
        overrides.setdefault("data", {})["root"] = str(root)
    for item in set_values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--set")
        nested = yaml.safe_load(value)
        if isinstance(nested, str):  # YAML 1.1 reads 5e-4 as a string
            try:
                nested = float(nested)
            except ValueError:
                pass
        for part in reversed(key.split(".")):
            nested = {part: nested}
        overrides = merged(overrides, nested)
    apply(params, overrides)
    console.print(f"{params}: the {name} recipe is set ({', '.join(sorted(overrides))}); `git diff {params}` shows "
                  f"what changed, `dvc repro` runs it")


@app.command()
def models():
    """List the registered model names."""
    from .models import list_models

    console.print("\n".join(list_models()))


if __name__ == "__main__":
    app()
