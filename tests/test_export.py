"""`cmkd export`: ONNX (run in onnxruntime) and TorchScript exports of trained models, checked against PyTorch at
two batch sizes on real features, carrying the model's classes and normalisation."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.export import export
from pipeline.models import build_model
from pipeline.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

from .conftest import ESC50, path

onnxruntime = pytest.importorskip("onnxruntime")  # a test-only extra


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


def test_ast_exports_to_onnx_through_the_cli(tmp_path):
    model = build_model({"name": "ast_test", "fstride": 16, "tstride": 16}, 3, 64, 128)
    save_checkpoint(tmp_path / "ast.pt", model, Checkpoint(
        role="student", architecture="ast", network={"name": "ast_test", "fstride": 16, "tstride": 16}, num_classes=3,
        num_frames=64, num_mel_bins=128, classes=["a", "b", "c"], normalization={"mean": -5.0, "std": 4.0}))
    result = CliRunner().invoke(app, ["export", str(tmp_path / "ast.pt"), "--format", "onnx",
                                      "--out", str(tmp_path / "ast.onnx")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["max abs logit difference"] <= 1e-4
    result = CliRunner().invoke(app, ["export", str(tmp_path / "ast.pt"), "--format", "tflite",
                                      "--out", str(tmp_path / "ast.x")])
    assert result.exit_code != 0 and "onnx, torchscript" in str(result.exception)
