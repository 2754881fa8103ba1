"""The EfficientAT family against EfficientAT's own code (../shared/reference/efficientat): the same seeded random
weights saved as its released files are (plain state dicts), converted by cmkd, give the same logits from the same
32 kHz audio, EfficientAT's mel front-end included."""
from __future__ import annotations

import pytest
import torch

from pipeline.features.efficientat import EfficientATMel
from pipeline.features.frontend import checkpoint_frontend
from pipeline.models import PretrainedError
from pipeline.models.checkpoint import load_checkpoint
from pipeline.models.convert import convert
from pipeline.models.families.efficientat import HEADS, WIDTHS

from .reference import randomize, reference, relative

CLASSES = 9


def reference_mobilenet(size: str, head: str, seed: int = 0):
    with reference("efficientat") as load:
        mn = load("models.mn.model")
        model = mn.get_model(num_classes=CLASSES, width_mult=WIDTHS[size], head_type=HEADS[head], input_dim_t=300)
        mel = load("models.preprocess").AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320)
    return randomize(model, seed).eval(), mel.eval()


def reference_logits(model, mel, wave: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(mel(wave).unsqueeze(1))[0]


def cmkd_logits(model, meta, wave: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    frontend = checkpoint_frontend(meta)
    feats, _ = frontend.clips(list(wave.to(dtype)), frontend.frames_of(wave.shape[1]), torch.device("cpu"))
    with torch.no_grad():
        return model.to(dtype)(meta.input_normalization(feats.to(dtype)))


@pytest.mark.parametrize("size,head", [("test", "mlp"), ("mn04", "mlp"), ("test", "attention"),
                                       ("test", "fully_convolutional")])
def test_converted_mobilenet_gives_the_references_logits_from_audio(tmp_path, size, head):
    """(Every released width: docs/scripts/reference_check.py, docs/bring-your-own-teacher.md.)"""
    ref, mel = reference_mobilenet(size, head)
    torch.save(ref.state_dict(), tmp_path / f"{size}_as.pt")
    report = convert(tmp_path / f"{size}_as.pt", tmp_path / "converted.pt")
    assert report["model"] == f"efficientat_{size}" and report["config"]["head"] == head
    model, meta = load_checkpoint(tmp_path / "converted.pt")
    assert meta.frontend_name == "efficientat" and isinstance(checkpoint_frontend(meta), EfficientATMel)
    wave = torch.randn(2, 32000 * 3, generator=torch.Generator().manual_seed(1)) * 0.1

    theirs = reference_logits(ref, mel, wave)
    ours = cmkd_logits(model.eval(), meta, wave)
    assert ours.shape == (2, CLASSES)
    assert relative(ours, theirs) < 1e-4, (ours - theirs).abs().max()


def test_a_state_dict_of_no_released_width_is_refused(tmp_path):
    ref, _ = reference_mobilenet("test", "mlp")
    sd = ref.state_dict()
    sd["features.16.0.weight"] = torch.zeros(8, *sd["features.16.0.weight"].shape[1:])
    torch.save(sd, tmp_path / "odd.pt")
    with pytest.raises(PretrainedError, match="odd.pt: an EfficientAT MobileNet of no released width"):
        convert(tmp_path / "odd.pt", tmp_path / "out.pt")
