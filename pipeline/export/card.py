"""The model card (README.md) of an exported folder, in the Hugging Face convention: YAML front matter (library,
pipeline tag, tags, datasets, metrics, the model-index with the test result), then what the model is, the CMKD
teacher it learned from (architecture, checkpoint sha256, lambda and tau), the data (classes, clips per split, run
and seed), its test metrics (the evaluate stage's metrics.json) and the report's teacher / baseline / student
comparison with the intervals, the input it expects, and the commands that made it. Everything is read from the
checkpoint and the workspace's results/; what is not there is said to be missing, never guessed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import layout
from ..models.checkpoint import Checkpoint, file_sha256
from ..runs import Run
from ..task.metrics import reported


def model_name(meta: Checkpoint) -> str | None:
    """The checkpoint's model in its run's layout (`cnn`, `forward/student`), where it was trained here."""
    if meta.run is None or meta.seed is None:
        return None
    if meta.role == "student" and meta.direction:
        return layout.student_model(meta.direction)
    return layout.labels_model(meta.architecture) if meta.role == "labels" else None


def read_results(meta: Checkpoint, results: Path | None) -> tuple[dict | None, dict | None]:
    """(this model's test metrics, its direction's summary in the report), from the workspace's results/."""
    results = Path(results) if results is not None else layout.RESULTS
    name = model_name(meta)
    if name is None:
        return None, None
    run = Run(meta.run, meta.seed)
    metrics_file = results / layout.metrics(name, run).relative_to(layout.RESULTS)
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    report_file = results / layout.REPORT_JSON.relative_to(layout.RESULTS)
    report = json.loads(report_file.read_text()) if report_file.is_file() else None
    summary = report.get(meta.direction) if report and meta.direction else None
    return metrics, summary


def write_card(out: Path, checkpoint: Path, meta: Checkpoint, family, loads_with: str, difference: float,
               results: Path | None, command: str | None) -> Path:
    """README.md in `out` for a model of `family` (pipeline/models) exported as its ecosystem's folder."""
    metrics, summary = read_results(meta, results)
    task = meta.task_kind
    key = task.headline
    source = meta.dataset.get("source") or "unknown"
    front = {"library_name": family.folder_library, "pipeline_tag": "audio-classification",
             "tags": ["audio-classification", "knowledge-distillation", "cmkd", *family.card_tags],
             "datasets": [source], "metrics": [key]}
    if metrics is not None:
        front["model-index"] = [{"name": f"cmkd {meta.network['name']}", "results": [{
            "task": {"type": "audio-classification"},
            "dataset": {"name": source, "type": source, "split": f"test of run {meta.run}"},
            "metrics": [{"type": key, "value": round(metrics[key], 4)}]}]}]
    lines = ["---", *_yaml(front), "---", "", f"# {meta.network['name']}: {describe_role(meta)}", ""]
    lines += what_it_is(meta) + teacher_section(meta) + data_section(meta, metrics)
    lines += results_section(meta, metrics, summary, key) + input_section(meta, family, loads_with)
    lines += ["## How it was made", "",
              f"- Trained by cmkd (code {meta.code.get('git_commit') or 'outside git'}"
              + (", with uncommitted changes" if meta.code.get("git_dirty") else "") + f", source sha256 "
              f"{(meta.code.get('source_sha256') or '?')[:12]}): `dvc repro`, stage "
              f"`{stage_of(meta)}`" + (" (params: `teacher`, `student`, `directions`, `distill`, `train`, "
                                      "`augment` in params.yaml)" if meta.run else ""),
              f"- Exported with `{command or 'cmkd export ' + ' '.join(sys.argv[2:])}` from `{checkpoint}` (sha256 "
              f"{file_sha256(checkpoint)[:12]}); read back and checked against the checkpoint: largest logit "
              f"difference {difference:.2g}.", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def describe_role(meta: Checkpoint) -> str:
    if meta.role == "student":
        return f"a CMKD student distilled from a {(meta.teacher or {}).get('architecture', '?')} teacher"
    if meta.role == "labels":
        return "trained on labels alone (a CMKD teacher, or a baseline)"
    return f"a {meta.role} model"


def what_it_is(meta: Checkpoint) -> list[str]:
    settings = ", ".join(f"{k} {v}" for k, v in meta.network.items() if k not in ("name", "pretrained", "lr", "epochs"))
    return ["## The model", "",
            f"- {meta.architecture} `{meta.network['name']}` ({settings or 'defaults'}), {meta.task} over "
            f"{meta.num_classes} classes, {meta.num_frames} frames x {meta.num_mel_bins} mel bins in.",
            f"- Weights kept: {meta.selection.get('select', '?')}"
            + (f" (epoch {meta.selection['epoch']})" if meta.selection.get("epoch") else "") + "; "
            f"{len(meta.history)} epochs trained" + (f" by {meta.world_size} processes" if meta.world_size > 1 else ""),
            ""]


def teacher_section(meta: Checkpoint) -> list[str]:
    if meta.role != "student" or not meta.teacher:
        return []
    t, d = meta.teacher, meta.distill or {}
    views = t.get("views")
    return ["## What it learned from (CMKD)", "",
            f"- Loss: lambda * L_gt + (1 - lambda) * L_kd toward the teacher's predictions at temperature tau: "
            f"lambda = {d.get('lambda')}, tau = {d.get('tau')}.",
            f"- Teacher: {t.get('architecture')} `{(t.get('model_config') or {}).get('name', '?')}`, checkpoint "
            f"`{t.get('checkpoint')}` (sha256 {t.get('checkpoint_sha256')})"
            + (", run on every batch (online)" if t.get("online") else
               f", its predictions cached once in `{t.get('cache')}`"
               + (f" on {views['count']} augmented views per clip" if views else " on the clean clips")) + ".", ""]


def data_section(meta: Checkpoint, metrics: dict | None) -> list[str]:
    clips = meta.dataset.get("clips") or {}
    shown = ", ".join(meta.classes[:20]) + (f", ... ({len(meta.classes)} in all)" if len(meta.classes) > 20 else "")
    return ["## Data", "",
            f"- Dataset: params `data.source: {meta.dataset.get('source', '?')}`"
            + (f" ({meta.dataset['from']})" if meta.dataset.get("from") else "") + f"; run `{meta.run}`, seed "
            f"{meta.seed}.",
            f"- Clips: {clips.get('train', '?')} train, {clips.get('val', '?')} validation, "
            f"{(metrics or {}).get('clips', clips.get('test', '?'))} test.",
            f"- Classes: {shown}.", ""]


def results_section(meta: Checkpoint, metrics: dict | None, summary: dict | None, key: str) -> list[str]:
    lines = ["## How well it does", ""]
    if metrics is None:
        lines += ["- No test metrics found beside it (run `dvc repro` in its workspace, or give `--results`).", ""]
        return lines
    shown = {k: round(metrics[k], 4) for k in reported(meta.task_kind) if k in metrics}
    lines += [f"- Test split of run {meta.run} (seed {meta.seed}, {metrics['clips']} clips): "
              + ", ".join(f"{k} {v}" for k, v in shown.items()) + "."]
    if summary:
        mean = summary["mean"]
        lines += ["", f"The report's comparison in this direction ({summary['teacher']} -> {summary['student']}), mean "
                  f"test {key} over its runs and seeds:", "", "| teacher | baseline (no KD) | student (CMKD) |",
                  "|---|---|---|", f"| {mean['teacher'][key]:.4f} | {mean['baseline'][key]:.4f} | "
                  f"{mean['student'][key]:.4f} |", ""]
        for name, diff in (("student - baseline", summary["student_minus_baseline"]),
                           ("student - teacher", summary["student_minus_teacher"])):
            lines.append(f"- {name}: {diff['mean']:+.4f} (95 % interval {diff['ci95_low']:+.4f} to "
                         f"{diff['ci95_high']:+.4f}, paired bootstrap over {diff['over']}, {diff['runs']} runs)")
    return lines + [""]


def input_section(meta: Checkpoint, family, loads_with: str) -> list[str]:
    f, norm = meta.fbank, meta.input_normalization
    window = ((meta.num_frames - 1) * f["frame_shift_ms"] + f["frame_length_ms"]) / 1000
    lines = ["## Input", "",
             f"- {int(f['sample_rate'])} Hz mono audio, the waveform mean removed, Kaldi fbank "
             f"(as `torchaudio.compliance.kaldi.fbank` computes it: htk_compat, hanning window, "
             f"{meta.num_mel_bins} mel bins, {f['frame_length_ms']:g} ms frames every {f['frame_shift_ms']:g} ms, "
             "no dither, no energy), "
             f"zero-padded or cropped to {meta.num_frames} frames ({window:g} s).",
             f"- Normalised as (x - mean) / (2 std) with mean {norm.mean:.6g}, std {norm.std:.6g} (the statistics it "
             "was trained with).", f"- Loads with `{loads_with}`."]
    return lines + [f"- {line}" for line in family.folder_card] + [""]


def stage_of(meta: Checkpoint) -> str:
    """The DVC stage that trained it (every seed of its split; this one is seed `meta.seed`)."""
    if meta.role == "student":
        return f"train_student@{meta.direction}-{meta.run}"
    return f"train@{meta.architecture}-{meta.run}"


def _yaml(tree: dict) -> list[str]:
    """YAML front matter as JSON-compatible flow values (YAML is a superset of JSON)."""
    return [f"{k}: {json.dumps(v)}" for k, v in tree.items()]
