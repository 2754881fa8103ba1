"""`cmkd export`: graphs (ONNX in onnxruntime, TorchScript) that take fbank or audio, and the folders `transformers`
and timm load, each checked against the pipeline's own path; the model card. transformers, timm and onnxruntime are
the independent references here (random or tiny trained weights, nothing downloaded)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.export import export
from pipeline.features.audio import load_audio
from pipeline.features.fbank import fbank, pad_or_crop
from pipeline.models import build_model
from pipeline.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

from .conftest import ESC50, REPO, evaluate, path, settings, train

onnxruntime = pytest.importorskip("onnxruntime")  # a test-only extra
FEATURES = {"sample_rate": 16000, "num_mel_bins": 128, "frame_shift_ms": 10.0, "frame_length_ms": 25.0}


def real_or_random_clips(tmp_path, count=3, seconds=(5.0, 2.5, 7.0)) -> list:
    """ESC-50 recordings when they are here, else noise written as wav files."""
    if ESC50.is_dir():
        return sorted((ESC50 / "audio").glob("*.flac"))[:count]
    import soundfile as sf

    rng = np.random.default_rng(0)
    files = []
    for i, s in enumerate(seconds[:count]):
        sf.write(tmp_path / f"clip{i}.wav", 0.1 * rng.standard_normal(int(16000 * s)).astype(np.float32), 16000)
        files.append(tmp_path / f"clip{i}.wav")
    return files


def random_checkpoint(tmp_path, name: str, frames: int = 128, classes=("a", "b", "c"), task="single-label"):
    network = {"name": name, "fstride": 16, "tstride": 16} if name.startswith("ast") else {"name": name}
    model = build_model(network, len(classes), frames, 128)
    with torch.no_grad():  # a classifier that gives logits far from zero, so that the probabilities differ
        for name_, p in model.named_parameters():
            if name_.startswith(("head.1.", "head.weight", "head.bias")):
                p.mul_(10.0)
    save_checkpoint(tmp_path / f"{name}.pt", model, Checkpoint(
        role="student", architecture="ast" if name.startswith("ast") else "cnn", network=network,
        num_classes=len(classes), num_frames=frames, num_mel_bins=128, classes=list(classes), task=task,
        normalization={"mean": -6.0, "std": 3.0}, features={**FEATURES, "target_frames": frames}, run="main", seed=0))
    return tmp_path / f"{name}.pt"


def test_onnx_and_torchscript_exports_match_pytorch(with_teacher, tmp_path):
    checkpoint = path("teacher")  # efficientnet_test, trained by the pipeline
    audio = sorted((ESC50 / "audio").glob("*.flac"))[:2] if ESC50.is_dir() else None
    onnx_report = export(checkpoint, tmp_path / "teacher.onnx", "onnx", audio)
    assert onnx_report["max abs logit difference"] <= 1e-4 and onnx_report["batch sizes checked"][0] == 1
    ts_report = export(checkpoint, tmp_path / "teacher.ts", "torchscript", audio)
    assert ts_report["max abs logit difference"] <= 1e-4

    import onnx

    model, ckpt = load_checkpoint(checkpoint)
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(tmp_path / "teacher.onnx")).metadata_props}
    assert meta["classes"] == ckpt.classes and meta["normalization"] == ckpt.normalization
    raw = torch.randn(5, ckpt.num_frames, ckpt.num_mel_bins) * 4 - 5  # a batch size never exported
    session = onnxruntime.InferenceSession(str(tmp_path / "teacher.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model((raw - ckpt.normalization["mean"]) / (2 * ckpt.normalization["std"])).numpy()
    np.testing.assert_allclose(session.run(None, {"features": raw.numpy()})[0], expected, atol=1e-4)
    extra = {"cmkd.json": ""}
    loaded = torch.jit.load(str(tmp_path / "teacher.ts"), _extra_files=extra)
    assert json.loads(extra["cmkd.json"])["classes"] == ckpt.classes
    np.testing.assert_allclose(loaded(raw).detach().numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("name", ["ast_test", "efficientnet_test"])
def test_waveform_graphs_take_audio_and_match_the_pipelines_own_path(tmp_path, name):
    """Audio in: the fbank inside the graph (ONNX's DFT) against torchaudio's Kaldi fbank clip by clip, padded or
    cropped, rounded to float16 and normalised as the features stage does, then the model; any length, any batch."""
    checkpoint = random_checkpoint(tmp_path, name)
    clips = real_or_random_clips(tmp_path)
    model, meta = load_checkpoint(checkpoint)
    decoded = int(np.ceil(4 * (127 * 10 + 25) / 1000 * 16000))  # what the features stage decodes of a clip
    for fmt in ("onnx", "torchscript"):
        report = export(checkpoint, tmp_path / f"{name}.{fmt}", fmt, clips, input_kind="waveform")
        assert report["max abs logit difference"] <= 1e-3 and report["input"] == "waveform"
    session = onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(tmp_path / f"{name}.torchscript"))
    worst = 0.0
    for clip in clips:
        wave = load_audio(clip, 16000)
        for length in (len(wave), 3000, 100):  # longer than the window, shorter, shorter than one frame
            w = wave[:length]
            feats = pad_or_crop(fbank(w[:decoded]), 128) if length >= 400 else torch.zeros(128, 128)
            with torch.no_grad():
                expected = model(meta.input_normalization(feats.half().float()[None])).numpy()
                batch = torch.stack([w, w])  # batch 2 of one length
                got = [session.run(None, {"waveform": batch.numpy()})[0], scripted(batch).numpy()]
            worst = max(worst, *(float(np.abs(g - expected).max()) for g in got))
    assert worst <= 1e-3, worst
    print(f"{name}: waveform graphs vs the pipeline, largest logit difference {worst:.2g}")


def test_hugging_face_folder_loads_in_transformers_and_gives_cmkd_predicts_probabilities(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    # a 5.12 s window: the 5 s clips fit it, so that cmkd predict scores one window, as the pipeline does
    checkpoint = random_checkpoint(tmp_path, "ast_test", frames=512, classes=("dog", "rain", "siren", "bell"))
    report = export(checkpoint, tmp_path / "hf", "huggingface")
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(report["files"])
    clips = real_or_random_clips(tmp_path, 2)

    classifier = transformers.pipeline("audio-classification", model=str(tmp_path / "hf"), device="cpu")
    result = CliRunner().invoke(app, ["predict", str(checkpoint), *map(str, clips), "--json", "--top", "4"])
    assert result.exit_code == 0, result.output
    ours = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    worst = 0.0
    for clip, mine in zip(clips, ours):
        theirs = classifier(load_audio(clip, 16000).numpy(), top_k=4)  # audio as the pipeline decodes it
        assert [t["label"] for t in theirs] == [m["class"] for m in mine["top"]]  # the same classes in order
        worst = max(worst, *(abs(t["score"] - m["probability"]) for t, m in zip(theirs, mine["top"])))
    assert worst <= 1e-4, worst
    print(f"Hugging Face pipeline vs cmkd predict: largest probability difference {worst:.2g}")

    hf = transformers.ASTForAudioClassification.from_pretrained(str(tmp_path / "hf")).eval()
    model, meta = load_checkpoint(checkpoint)
    x = meta.input_normalization(torch.randn(2, 512, 128) * 3 - 6)
    with torch.no_grad():  # one LayerNorm eps in HF's AST: cmkd's classifier norm has 1e-5 for the encoder's 1e-6
        np.testing.assert_allclose(hf(x).logits.numpy(), model(x).numpy(), rtol=5e-5, atol=1e-5)
    assert hf.config.id2label[2] == "siren" and hf.config.max_length == 512 and hf.config.frequency_stride == 16

    from pipeline.models.convert import convert  # and cmkd reads its own export back

    convert(tmp_path / "hf", tmp_path / "back.pt")
    back, back_meta = load_checkpoint(tmp_path / "back.pt")
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), model(x).numpy(), atol=1e-5)
    assert back_meta.classes == meta.classes and back_meta.normalization == meta.normalization


def test_timm_folder_loads_with_timms_own_api_and_gives_the_cmkd_logits(tmp_path):
    import timm

    checkpoint = random_checkpoint(tmp_path, "efficientnet_test", classes=("yes", "no"))
    report = export(checkpoint, tmp_path / "timm", "timm")
    assert {"config.json", "model.safetensors", "README.md"} <= set(report["files"])
    config = json.loads((tmp_path / "timm" / "config.json").read_text())
    assert config["architecture"] == "test_efficientnet" and config["num_classes"] == 2
    assert config["label_names"] == ["yes", "no"] and config["model_args"]["in_chans"] == 1
    loaded = timm.create_model(f"local-dir:{tmp_path / 'timm'}", pretrained=True).eval()
    model, meta = load_checkpoint(checkpoint)
    x = meta.input_normalization(torch.randn(3, 128, 128) * 3 - 6)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x.transpose(1, 2).unsqueeze(1)).numpy(), model(x).numpy(), atol=1e-5)
    ast = random_checkpoint(tmp_path, "ast_test")
    with pytest.raises(ValueError, match="ast_test belongs to the ast family, whose folder is huggingface"):
        export(ast, tmp_path / "no", "timm")
    assert not (tmp_path / "no").exists()


def test_a_trained_students_card_says_what_it_is_learned_from_and_scored(with_teacher, tmp_path):
    root, params = with_teacher
    s = settings(params)
    train(s, "student")
    train(s, "baseline")
    for role in ("teacher", "baseline", "student"):
        evaluate(s, role)
    from pipeline.evaluation.report import write_report

    write_report(s)
    # the DVC stage export@folder-forward-main (params export.formats: [folder]): Hugging Face's, for an AST
    (root / "params.yaml").write_text(json.dumps({**params, "export": {"formats": ["folder"]}}))
    result = subprocess.run([sys.executable, str(REPO / "stages" / "export.py"), "folder", "forward", "main"],
                            cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = root / "data/exports/main/forward/folder/seed0"
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in folder.iterdir()}
    export(path("student"), tmp_path / "hf", "huggingface", command="cmkd export student.pt --format huggingface")
    assert (folder / "README.md").read_text().split("## How it was made")[0] == \
        (tmp_path / "hf" / "README.md").read_text().split("## How it was made")[0]
    card = (tmp_path / "hf" / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: \"transformers\"" in front and "\"audio-classification\"" in front
    assert "model-index" in front and "\"accuracy\"" in front
    from pipeline.models.checkpoint import file_sha256

    assert file_sha256(path("teacher")) in card  # the teacher it learned from, by its checksum
    assert "lambda = 0.5, tau = 4.0" in card and "train_student@forward-main" in card
    assert "| teacher | baseline (no KD) | student (CMKD) |" in card and "student - baseline:" in card
    assert "Normalised as (x - mean) / (2 std)" in card and "cmkd export student.pt --format huggingface" in card


def test_ast_exports_to_onnx_through_the_cli(tmp_path):
    checkpoint = random_checkpoint(tmp_path, "ast_test", frames=64)
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "a.onnx")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["max abs logit difference"] <= 1e-4
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--format", "tflite", "--out", str(tmp_path / "a.x")])
    assert result.exit_code != 0 and "onnx, torchscript" in str(result.exception)


def test_the_command_line_entry_prints_a_clean_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "export", str(tmp_path / "missing.pt"),
                             "--format", "onnx", "--out", str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["efficientat_test", "beats_test"])
def test_waveform_graphs_carry_the_models_own_front_end(tmp_path, name):
    """A family with its own front-end (EfficientAT's 32 kHz mel, BEATs' fbank): the exported graph takes audio at
    that front-end's rate and gives the logits of the features stage's path (the export's own check, clip by clip)."""
    from pipeline.features.frontend import frontend_named

    frontend = frontend_named(name.split("_")[0])
    frames, classes = 100, ["a", "b", "c"]
    network = {"name": name}
    model = build_model(network, len(classes), frames, frontend.bins)
    save_checkpoint(tmp_path / f"{name}.pt", model, Checkpoint(
        role="student", architecture="cnn" if name.startswith("efficientat") else "ast", network=network,
        num_classes=3, num_frames=frames, num_mel_bins=frontend.bins, classes=classes, task="single-label",
        normalization={"mean": -4.5, "std": 2.5}, features={**frontend.params(), "target_frames": frames},
        run="main", seed=0))
    import soundfile as sf

    rng = np.random.default_rng(0)
    clips = []
    for i, seconds in enumerate((2.0, 0.5)):  # longer than the window, and shorter
        sf.write(tmp_path / f"clip{i}.wav", 0.1 * rng.standard_normal(int(frontend.sample_rate * seconds)),
                 frontend.sample_rate)
        clips.append(tmp_path / f"clip{i}.wav")
    report = export(tmp_path / f"{name}.pt", tmp_path / f"{name}.onnx", "onnx", clips, input_kind="waveform")
    assert report["max abs logit difference"] <= 1e-3 and report["input"] == "waveform"
    session = onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "waveform"
    wave = np.stack([load_audio(clips[0], frontend.sample_rate).numpy()] * 2)
    assert session.run(None, {"waveform": wave})[0].shape == (2, 3)
