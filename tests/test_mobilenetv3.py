"""The MobileNetV3 family (pipeline/models/families/mobilenetv3.py), added in one file: it trains on labels, is
distilled in both directions against the AST and the EfficientNet, leaves as a waveform-in ONNX graph (checked in
onnxruntime) and as its timm folder (loaded by timm), and `cmkd convert` reads that folder back exactly."""
import json

import numpy as np
import pytest
import torch

from pipeline import layout
from pipeline.export import export
from pipeline.models import create_model, family
from pipeline.models.checkpoint import load_checkpoint
from pipeline.models.convert import convert

from .conftest import MAIN, dump, evaluate, settings, train

pytest.importorskip("onnxruntime")
MOBILE = {"name": "mobilenetv3_small_050", "lr": 1.0e-3, "epochs": 2}


def test_mean_pooling_is_timms_own_network():
    model = create_model("mobilenetv3_small_050", num_classes=5, num_frames=100).eval()
    x = torch.randn(2, 100, 128)
    with torch.no_grad():
        torch.testing.assert_close(model.to_timm()(x.transpose(1, 2).unsqueeze(1)), model(x), rtol=0, atol=0)
    assert family("mobilenetv3_large_100").folder_format == "timm"


@pytest.mark.parametrize("other", ["ast", "cnn"])
def test_distilled_both_ways_against_the_ast_and_the_efficientnet(in_workspace, other):
    _, params = in_workspace
    params["models"]["mn"] = dict(MOBILE)
    params.update(teacher="mn", student=other, directions=["forward", "reverse"])
    s = settings(params)
    train(s, "teacher")                         # mn on labels
    train(s, "baseline")                        # the other on labels
    for direction in ("forward", "reverse"):    # mn -> other, other -> mn
        dump(s, direction=direction)
        train(s, "student", direction=direction)
        result = evaluate(s, "student", direction=direction)
        assert 0 <= result["accuracy"] <= 1 and result["model"] == (MOBILE["name"] if direction == "reverse"
                                                                    else s.models[other].name)
    student = load_checkpoint(layout.checkpoint(layout.student_model("reverse"), MAIN))[1]
    assert student.network["name"] == MOBILE["name"] and student.teacher["architecture"] == other
    assert len(student.history) == MOBILE["epochs"] and student.distill["lambda"] == 0.5


def test_exported_as_waveform_onnx_and_timm_folder_then_converted_back(in_workspace, tmp_path):
    _, params = in_workspace
    params["models"]["mn"] = dict(MOBILE)
    params.update(teacher="mn", student="ast")
    s = settings(params)
    train(s, "teacher")
    checkpoint = layout.checkpoint("mn", MAIN)
    graph = export(checkpoint, tmp_path / "mn.onnx", "onnx", input_kind="waveform")
    assert graph["max abs logit difference"] <= 1e-3  # the export's own tolerance (the fbank in the graph)
    folder = export(checkpoint, tmp_path / "mn_timm", "folder")
    assert folder["format"] == "timm" and folder["max abs logit difference"] <= 1e-5
    assert "mobilenetv3" in (tmp_path / "mn_timm" / "README.md").read_text()

    report = convert(tmp_path / "mn_timm" / "model.safetensors", tmp_path / "back.pt")
    assert report["model"] == MOBILE["name"] and report["source"]["format"] == "timm"
    original, meta = load_checkpoint(checkpoint)
    back, back_meta = load_checkpoint(tmp_path / "back.pt")
    assert back_meta.classes == meta.classes and back_meta.normalization == meta.normalization
    assert back_meta.num_frames == meta.num_frames and back_meta.task == meta.task
    x = torch.randn(3, meta.num_frames, meta.num_mel_bins)
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), original(x).numpy(), atol=1e-6)
    config = json.loads((tmp_path / "mn_timm" / "config.json").read_text())
    assert config["architecture"] == MOBILE["name"] and config["num_classes"] == len(meta.classes)
