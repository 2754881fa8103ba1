"""`cmkd`: the pipeline's steps as commands (each DVC stage runs the same library function). Each command parses
its options, calls the library and prints what it returns; the work is the library's."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from .settings import ROLES, load_settings

app = typer.Typer(help="CNN/Transformer cross-model knowledge distillation for audio. "
                       "`dvc repro` runs every step in order; these commands run one.", no_args_is_help=True)
console = Console()
PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="the params file", exists=True, dir_okay=False)
SPLIT = typer.Option(None, "--run", "-r", help="which run (main, fold1, ...); default: the first of params `runs`")
SEED = typer.Option(None, "--seed", "-s", help="which seed; default: the first of params `seeds`")
DIRECTION = typer.Option("forward", "--direction", "-d", help="forward (params teacher -> student) or reverse")


def _run(settings, split: str | None, seed: int | None):
    from .runs import Run

    return Run(split or settings.runs[0], settings.seeds[0] if seed is None else seed)


def _role(role: str) -> str:
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    return role


@app.command()
def prepare(params: Path = PARAMS):
    """The dataset as data/raw/manifest.csv + classes.txt, from params `data.source`."""
    from .prepare import prepare as prepare_data

    prepare_data(load_settings(params))


@app.command()
def features(params: Path = PARAMS):
    """Kaldi fbank for every clip of data/raw/manifest.csv into data/features.zarr (Dask, resumable)."""
    from .features.extract import extract

    extract(load_settings(params))


@app.command()
def train(role: str = typer.Argument(..., callback=_role, help="teacher, student or baseline"),
          params: Path = PARAMS, run: str = SPLIT, seed: int = SEED, direction: str = DIRECTION):
    """Train a direction's teacher or baseline (its architecture on labels) or its CMKD student (from the cached
    predictions)."""
    from .runtime import launch
    from .training import jobs
    from .training.adopt import adopt_if_ready
    from .training.loop import train as train_job

    settings = load_settings(params)
    launch(settings, module="pipeline.cli")  # through torchrun when params `distributed` asks for several
    job, which = jobs.for_role(role, settings.direction(direction)), _run(settings, run, seed)
    if job.role == "labels" and adopt_if_ready(settings, job.architecture, which):
        return
    result = train_job(settings, job, which)
    if result:  # the main process's
        console.print(result)


@app.command()
def evaluate(role: str = typer.Argument(..., callback=_role, help="teacher, student or baseline"),
             params: Path = PARAMS, run: str = SPLIT, seed: int = SEED, direction: str = DIRECTION):
    """Test-split metrics of a direction's teacher, baseline or student (from the held-out logits its training
    kept) into results/runs/<run>/seed<k>/."""
    from .evaluation.evaluate import evaluate as evaluate_model
    from .training import jobs

    settings = load_settings(params)
    job = jobs.for_role(role, settings.direction(direction))
    console.print(evaluate_model(job.name, _run(settings, run, seed)))


@app.command()
def dump(params: Path = PARAMS, run: str = SPLIT, seed: int = SEED, direction: str = DIRECTION):
    """A direction's frozen teacher's logits for every clip into data/runs/<run>/seed<k>/<direction>/."""
    from .cache.dump import dump as dump_logits
    from .runtime import launch

    settings = load_settings(params)
    launch(settings, module="pipeline.cli")  # through torchrun when params `distributed` asks for several
    dump_logits(settings, direction, _run(settings, run, seed))


@app.command()
def report(params: Path = PARAMS):
    """Teacher, baseline and student per direction over every run and seed in results/report.md, report.json,
    plots/ and figures/."""
    from .evaluation.report import write_report

    console.print(write_report(load_settings(params)))


@app.command()
def check(params: Path = PARAMS,
          as_json: bool = typer.Option(False, "--json", help="print JSON (clips, problems) instead of a table")):
    """Decode every clip of the dataset params describe, in parallel, and list every problem in one table
    (file, problem); exits 1 if a clip cannot be used. Decoder warnings are listed with their file."""
    from rich.table import Table

    from .features.check import check_dataset
    from .features.length import crop_warning
    from .manifest import ManifestError
    from .presets import demo_recipe_warning

    settings = load_settings(params)
    try:
        clips, problems, input_length = check_dataset(settings)
    except ManifestError as e:
        console.print(f"[red]manifest:[/red] {e}")
        raise typer.Exit(1)
    errors = [p for p in problems if p[1] == "error"]
    if as_json:
        print(json.dumps({"clips": len(clips), "unusable": len(errors), "problems": [
            {"file": f, "kind": kind, "problem": what} for f, kind, what in problems],
            "input_length": input_length}, indent=1))
    elif problems:
        table = Table("file", "kind", "problem", title=f"{len(problems)} problems in {len(clips)} clips")
        for row in problems:
            table.add_row(*row)
        console.print(table)
    if not as_json:
        console.print(f"{len(clips)} clips checked: {len(errors)} cannot be used, {len(problems) - len(errors)} "
                      f"warnings" + (" (features.on_error: skip leaves the unusable ones out)" if errors else ""))
        length = input_length
        console.print(f"window: {length['target_frames']} frames ({length['window_seconds']:g} s; "
                      f"{length['rule']}); it crops {length['cropped']} of {length['clips']} clips "
                      f"({length['cropped_share']:.0%}), {length['audio_lost_share']:.0%} of the audio")
        for warning in (crop_warning(length), demo_recipe_warning(settings.as_params())):
            if warning:
                console.print(f"[yellow]warning:[/yellow] {warning}")
    if errors:
        raise typer.Exit(1)


@app.command()
def compare(source: Path = typer.Option(None, "--from", help="a saved `dvc exp show --json` (default: run it)"),
            direction: str = typer.Option(None, help="forward or reverse (default: every one in the report)")):
    """DVC experiments side by side (the params they vary, the student's validation and test scores, student -
    baseline with its interval); per direction the setting validation picks, and the pick's test score."""
    from rich.table import Column, Table

    from .evaluation.compare import choose, read_experiments, varied

    found = read_experiments(source)
    if not found:
        raise typer.BadParameter("no experiment with results/report.json and params.yaml in `dvc exp show`")
    directions = [direction] if direction else sorted({d for e in found for d in e.report if d in ("forward",
                                                                                                 "reverse")})
    keys = varied(found)
    for name in directions:
        rows, pick = choose(found, name)
        key = rows[0]["metric"] if rows else "accuracy"
        table = Table(Column("experiment", no_wrap=True), *keys, f"val {key} (student)", f"test {key} (student)",
                      "baseline", "student - baseline [95 %]",
                      title=f"{name}: sorted by the student's validation {key}")
        for r in rows:
            gain = r["gain"]
            table.add_row(("* " if r is pick else "") + r["experiment"], *(str(r["params"][k]) for k in keys),
                          "?" if r["validation"] is None else f"{r['validation']:.4f}", f"{r['test']:.4f}",
                          f"{r['baseline']:.4f}", f"{gain['mean']:+.4f} [{gain['ci95_low']:+.4f}, "
                          f"{gain['ci95_high']:+.4f}]")
        console.print(table)
        if pick:
            gain, chosen = pick["gain"], ", ".join(f"{k}={v}" for k, v in pick["params"].items())
            console.print(f"{name}: validation picks [bold]{pick['experiment']}[/bold] "
                          f"({chosen}): test {key} {pick['test']:.4f}, "
                          f"student - baseline {gain['mean']:+.4f} (95 % interval {gain['ci95_low']:+.4f} to "
                          f"{gain['ci95_high']:+.4f}, over {gain['over']}); the test scores did not choose")


@app.command()
def check_params(params: Path = PARAMS):
    """Validate params.yaml: every unknown key, wrong type or value out of range, with what is allowed."""
    from .presets import demo_recipe_warning
    from .validation import check_all

    settings = check_all(load_settings(params))
    console.print(f"{params}: valid")
    if warning := demo_recipe_warning(settings.as_params()):
        console.print(f"[yellow]warning:[/yellow] {warning}")


@app.command()
def bench(size: str = typer.Option("cpu", help="tiny | cpu (small models, 500 frames) | gpu (AST-base and "
                                                "EfficientNet-B2 at 1024 frames)"),
          out: Path = typer.Option(Path("bench.json"), help="where the figures go as JSON"),
          compile: bool = typer.Option(False, "--compile", help="also time the torch.compile'd training step"),
          workdir: Path = typer.Option(None, help="keep the benchmark's workspace here (default: a temp folder)"),
          clips: int = typer.Option(None, help="override the size's number of clips"),
          workers: int = typer.Option(None, help="override the size's Dask and loader worker count"),
          repeats: int = typer.Option(None, help="override the size's rounds of training measurements (median)"),
          section: list[str] = typer.Option(None, "--section", help="only these sections (repeatable): features, "
                                            "distributed, read, dump, train, processes, export, detect, bootstrap")):
    """Throughput of extraction, store reads, the teacher dump and student training (pure, cached, online), and
    deployment latency of the exports."""
    from .bench import SECTIONS, SIZES, print_table, run_bench

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}")
    unknown = set(section or []) - set(SECTIONS)
    if unknown:
        raise typer.BadParameter(f"unknown sections {sorted(unknown)}; have {', '.join(SECTIONS)}")
    overrides = {k: v for k, v in {"clips": clips, "workers": workers, "repeats": repeats}.items() if v is not None}
    report = run_bench(size, out, workdir, compile, tuple(section) if section else SECTIONS, overrides=overrides)
    print_table(report, console)
    console.print(f"figures written to {out}")


@app.command()
def scale(clips: int = typer.Option(..., help="clips of 10 s (70 % AudioSet balanced-train label sets, the rest "
                                    "evaluation-set ones)"),
          meta: Path = typer.Option(..., help="AudioSet's metadata folder: class_labels_indices.csv, "
                                    "balanced_train_segments.csv, eval_segments.csv"),
          workdir: Path = typer.Option(..., help="where the dataset and the DVC project go (tens of GB at 30,000)"),
          epochs: int = typer.Option(1, help="epochs of each training"),
          resident: str = typer.Option("false", help="train.resident: false (the loader path), auto or true"),
          out: Path = typer.Option(None, help="the measurements as JSON")):
    """The whole pipeline at AudioSet's shape (527 classes, its real label sets, 10 s clips, 1024 frames), one
    `dvc repro` stage at a time: per stage wall time, clips/s, peak memory and bytes on disk per clip."""
    from .scale import run_scale

    report = run_scale(clips, meta, workdir, epochs, resident, out=out)
    console.print_json(json.dumps(report))


@app.command("scale-table")
def scale_table(reports: list[Path] = typer.Argument(..., help="`cmkd scale --out` files, one per size")):
    """docs/scaling.md's markdown table from `cmkd scale` measurements."""
    from .scale import markdown_table

    print(markdown_table([json.loads(p.read_text()) for p in reports]), end="")


@app.command()
def inspect(path: Path = typer.Argument(..., help="a feature store, prediction store, checkpoint or metrics file"),
            clip: str = typer.Option(None, help="also show this clip: its features and the teacher's top predictions"),
            as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables")):
    """Audit an artifact: shapes, chunking, size, value statistics, classes, provenance; for cached predictions
    also the teacher's metrics recomputed from the cache, its calibration and the classes it confuses most."""
    from .audit import inspect_path, render

    report = inspect_path(path, clip)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        render(report, console)


@app.command()
def preset(name: str = typer.Argument(..., help="builtin (the demo) | own-data (your manifest: --manifest) | esc50 | "
                                   "fsd50k | audioset (the papers' recipes: --root)"),
           root: Path = typer.Option(None, help="the dataset's folder in its official layout (sets data.root)"),
           manifest: Path = typer.Option(None, help="your manifest CSV (sets data.manifest; own-data)"),
           multi_label: bool = typer.Option(None, "--multi-label/--single-label", help="sets data.multi_label"),
           set_values: list[str] = typer.Option(None, "--set", help="KEY=VALUE on top of the preset, e.g. "
                                                "models.cnn.name=efficientnet_test (repeatable; VALUE is YAML)"),
           params: Path = PARAMS):
    """Switch params.yaml to a recipe in place (comments and other values kept; every preset sets the same keys, so
    switching from one to another leaves nothing of the first behind); then run `dvc repro`."""
    from .presets import apply, with_options

    try:
        overrides = with_options(name, root=root, manifest=manifest, multi_label=multi_label, sets=set_values or [])
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    dropped: list[str] = []
    apply(params, overrides, dropped)
    console.print(f"{params}: the {name} recipe is set ({', '.join(sorted(overrides))}); `git diff {params}` shows "
                  f"what changed, `dvc repro` runs it")
    if dropped:
        console.print(f"left out, as their model's family does not take them: {', '.join(dropped)}")


@app.command()
def convert(src: Path = typer.Argument(..., help="a checkpoint of a family cmkd converts (`cmkd models` lists what "
                                       "each reads): a weights file, or a Hugging Face folder (config.json beside its "
                                       "weights)"),
            out: Path = typer.Option(..., "--out", "-o", help="the cmkd checkpoint to write (.pt)"),
            classes: Path = typer.Option(None, help="class names: AudioSet's class_labels_indices.csv, or one a line"),
            frames: int = typer.Option(None, help="the model's input frames, where the file does not say (the AST "
                                       "repository's: read from its patch grid, 1024 for AudioSet)"),
            mean: float = typer.Option(None, help="the training set's fbank mean (with --std), where the file does "
                                       "not say; AudioSet's for 527 classes otherwise"),
            std: float = typer.Option(None, help="the training set's fbank std"),
            multi_label: bool = typer.Option(None, "--multi-label/--single-label",
                                             help="default: multi-label for AudioSet's 527 classes")):
    """Convert a checkpoint from the AST repository or Hugging Face into a cmkd checkpoint (format told from the
    keys), printing what was mapped and assumed; use it as models.<key>.pretrained or with `cmkd predict`."""
    from .models.convert import convert as convert_checkpoint

    if (mean is None) != (std is None):
        raise typer.BadParameter("give --mean and --std together", param_hint="--mean")
    report = convert_checkpoint(src, out, frames=frames, classes=classes, mean=mean, std=std, multi_label=multi_label)
    console.print_json(json.dumps(report))
    console.print(f"wrote {out}")


@app.command()
def predict(model: Path = typer.Argument(..., exists=True, dir_okay=False, help="a cmkd checkpoint (.pt)"),
            audio: list[Path] = typer.Argument(..., help="audio files, folders (searched recursively) or manifest "
                                               "CSVs with a `path` column"),
            top: int = typer.Option(5, min=1, help="classes shown (or listed in JSON) per file"),
            as_json: bool = typer.Option(False, "--json", help="one JSON object per file: path, windows, classes, "
                                         "logits (every class, the model's order), top"),
            out: Path = typer.Option(None, "--out", help="also write a CSV: path, windows, top class, its "
                                     "probability, then every class's logit"),
            aggregate: str = typer.Option("mean", help="over the windows of a clip longer than the model's: mean "
                                          "or max of the logits"),
            batch_size: int = typer.Option(32, min=1),
            on_error: str = typer.Option("fail", help="an unreadable file: fail (naming it) or skip (listed)")):
    """Score audio files with a trained or converted model: decoded, resampled and turned into the model's own
    features; clips longer than its window scored in windows and aggregated."""
    from rich.table import Table

    from .predict import Predictor, audio_inputs, predict_files

    files = audio_inputs(audio)
    predictor = Predictor(model, batch_size=batch_size)
    skipped: list = []
    table = Table("file", "windows", f"top {top}")
    table.columns[0].overflow = "fold"
    for result in predict_files(predictor, files, top, aggregate, on_error, skipped, out):
        if as_json:
            print(json.dumps(result))
        else:
            table.add_row(result["path"], str(result["windows"]),
                          ", ".join(f"{t['class']} {t['probability']:.3f}" for t in result["top"]))
    if not as_json:
        console.print(table)
    for path, why in skipped:
        console.print(f"[yellow]skipped[/yellow] {why}", style=None)


@app.command()
def detect(model: Path = typer.Argument(..., exists=True, dir_okay=False, help="a cmkd checkpoint (.pt)"),
           audio: list[Path] = typer.Argument(..., help="audio files, folders (searched recursively) or manifests"),
           out: Path = typer.Option(Path("detections"), "--out", "-o", help="the folder the results go to"),
           timeline: str = typer.Option("windows", help="windows: window voting every --hop seconds (chosen on "
                                        "validation); frames: the model's own per-step scores (models that keep "
                                        "their time axis)"),
           hop: float = typer.Option(0.5, help="--timeline windows: seconds between window starts (the step)"),
           gate: str = typer.Option("default", help="dB over the recording's own background a step must reach to "
                                    "hold an event, so that silence and steady noise give none (default: the margin "
                                    "chosen on validation, pipeline/events/activity.py); off: no gate"),
           threshold: str = typer.Option("0.5", help="a score for every class, or a JSON file {class: threshold}"),
           tune: Path = typer.Option(None, help="validation recordings (a folder): pick each class's threshold on "
                                     "them (needs --tune-annotations); written to <out>/thresholds.json"),
           tune_annotations: Path = typer.Option(None, help="their events: a DCASE table (filename, onset, offset, "
                                                 "event_label)"),
           score: Path = typer.Option(None, help="the events of AUDIO (a DCASE table): score the detections "
                                      "(event- and segment-based F1, PSDS, onset error) into <out>/scores.json"),
           quiet: Path = typer.Option(None, help="with --score: stretches of AUDIO known to hold no event (a DCASE "
                                      "table): the false alarms per minute of them"),
           classes: str = typer.Option(None, help="the classes scored and tuned (a file, one a line, or names "
                                       "joined by commas; default: every class of the model)"),
           smooth: float = typer.Option(1.5, help="seconds of the median filter over each class's scores"),
           min_gap: float = typer.Option(0.5, help="events of a class closer than this are joined"),
           min_duration: float = typer.Option(0.0, help="shorter events are dropped"),
           pictures: bool = typer.Option(True, help="a timeline picture per file"),
           batch_size: int = typer.Option(32, min=1)):
    """What sounded when in recordings of any length: a per-class score timeline (windows of the model's length
    every --hop seconds, streamed), smoothed and thresholded into events (class, onset, offset, confidence), written
    as a DCASE table, JSON, Audacity label tracks and a picture per file (docs/long-recordings.md)."""
    from rich.progress import Progress

    from .events.detect import Validation
    from .events.detect import detect as detect_events
    from .events.segments import Postprocessing

    if tune is not None and tune_annotations is None:
        raise typer.BadParameter("give the validation events with --tune-annotations", param_hint="--tune")
    from .events.activity import margin_option

    try:
        gate_db = margin_option(gate)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--gate") from None
    with Progress(console=console) as progress:
        bar = progress.add_task("audio", total=None)

        def advance(what: str, seconds: float) -> None:
            progress.update(bar, description=what, advance=seconds)

        summary = detect_events(model, audio, out, hop, threshold,
                                Validation(tune, tune_annotations) if tune is not None else None, score, classes,
                                Postprocessing(smooth, min_gap, min_duration), pictures, batch_size, advance,
                                timeline, gate_db, quiet)
    console.print(f"{summary['events']} events in {summary['files']} files ({summary['minutes']:.1f} min of audio) "
                  f"-> {summary['table']}")
    if "scores" in summary:
        console.print_json(json.dumps(summary["scores"], default=lambda v: None if isinstance(v, float) else v))


@app.command()
def compare_detections(a: Path = typer.Argument(..., exists=True, help="a detection's scores.json (detect --score)"),
                       b: Path = typer.Argument(..., exists=True, help="another's, on the same recordings")):
    """Event-based F1 of two detections and their difference (a - b) with a 95 % interval from resampling the
    recordings (paired: the same draw for both)."""
    from .events.scoring import paired_difference

    result = paired_difference(json.loads(a.read_text())["file_counts"], json.loads(b.read_text())["file_counts"])
    console.print_json(json.dumps(result))


@app.command()
def soundscapes(esc50: Path = typer.Option(..., help="the ESC-50 folder (meta/esc50.csv, audio/)"),
                fold: int = typer.Option(..., help="the fold the models never trained on (a run's test fold)"),
                out: Path = typer.Option(..., "--out", "-o"),
                val: int = typer.Option(15, help="validation soundscapes (a minute each): thresholds are picked here"),
                test: int = typer.Option(35, help="test soundscapes (a minute each)"),
                seed: int = typer.Option(0)):
    """Soundscapes with known events from a held-out ESC-50 fold (ambient recordings with the other classes' clips
    laid over them), for `cmkd detect --tune ... --score ...` (pipeline/events/soundscapes.py)."""
    from .events.soundscapes import write_soundscapes

    described = write_soundscapes(esc50, fold, out, val, test, seed=seed)
    (out / "event_classes.txt").write_text("\n".join(described["event classes"]) + "\n")
    console.print_json(json.dumps(described))


@app.command()
def export(model: Path = typer.Argument(..., exists=True, dir_okay=False, help="a cmkd checkpoint (.pt)"),
           fmt: str = typer.Option(..., "--format", help="onnx | torchscript (one graph file) | folder (the folder "
                                   "the model family's ecosystem loads; `cmkd models` lists each family's format, "
                                   "which --format also takes by name)"),
           out: Path = typer.Option(..., "--out", "-o", help="the file (onnx, torchscript) or folder to write"),
           input_kind: str = typer.Option("features", "--input", help="onnx, torchscript: features (raw fbank "
                                          "[batch, frames, mel bins]) or waveform (16 kHz audio [batch, samples])"),
           check_audio: list[Path] = typer.Option(None, "--check-audio", help="audio files the export is checked on "
                                                  "(repeatable; default: random inputs)"),
           results: Path = typer.Option(None, help="the workspace's results/ whose metrics and report the model card "
                                        "quotes (default: ./results)"),
           tolerance: float = typer.Option(1e-3, help="the largest logit difference from the pipeline accepted")):
    """Export a model for deployment, checked against the pipeline's own path before it is reported: a graph
    (ONNX, TorchScript) that takes fbank or audio, or the folder `transformers` or timm loads, with a model card."""
    import shlex
    import sys

    from .export import export as export_model

    command = "cmkd " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    console.print_json(json.dumps(export_model(model, out, fmt, check_audio or None, tolerance, input_kind, results,
                                               command)))


@app.command()
def models():
    """The model families and their registered models: each family's kind, the ecosystem folder `cmkd export
    --format folder` writes, and what `cmkd convert` reads of it."""
    from .models import all_families

    for family in all_families():
        folder = f"{family.folder_format} ({family.folder_library})" if family.folder_format else "none"
        console.print(f"[bold]{family.name}[/bold] ({family.kind}): folder {folder}; cmkd convert reads "
                      f"{family.converts or 'its own checkpoints only'}", soft_wrap=True)
        print("  " + ", ".join(sorted(family.models)))


def main() -> None:
    """The `cmkd` command: a bad param or input file ends it with its message (pipeline/errors.py)."""
    from .errors import reported

    with reported():
        app()


if __name__ == "__main__":
    main()
