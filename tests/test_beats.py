"""The BEATs family against BEATs' own code (../shared/reference/beats): the same seeded random weights saved in the
released layouts, converted or loaded by cmkd, give the same logits from the same audio, BEATs' front-end
included."""
from __future__ import annotations

import pytest
import torch

from pipeline.features.beats import BEATsFbank
from pipeline.features.frontend import checkpoint_frontend
from pipeline.models import PretrainedError, create_model
from pipeline.models.checkpoint import load_checkpoint
from pipeline.models.convert import convert
from pipeline.models.families.beats import SIZES
from pipeline.models.pretrained import load_pretrained

from .reference import randomize, reference, relative

CLASSES = 7


def released_cfg(size: str, finetuned: bool = True) -> dict:
    """A BEATs_iter3-style cfg of one of the family's sizes."""
    dims = SIZES[size]
    return {"input_patch_size": 16, "embed_dim": dims["patch_dim"], "conv_bias": False,
            "encoder_layers": dims["depth"], "encoder_embed_dim": dims["dim"], "encoder_ffn_embed_dim": dims["ffn_dim"],
            "encoder_attention_heads": dims["heads"], "activation_fn": "gelu", "layer_norm_first": False,
            "deep_norm": True, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
            "encoder_layerdrop": 0.0, "dropout_input": 0.0, "conv_pos": dims["conv_pos"],
            "conv_pos_groups": dims["conv_pos_groups"], "relative_position_embedding": True, "num_buckets": 320,
            "max_distance": 800, "gru_rel_pos": True, "finetuned_model": finetuned, "predictor_dropout": 0.0,
            "predictor_class": CLASSES}


def reference_beats(size: str, finetuned: bool = True, seed: int = 0):
    with reference("beats") as load:
        beats = load("BEATs")
        cfg = released_cfg(size, finetuned)
        model = beats.BEATs(beats.BEATsConfig(cfg))
    return randomize(model, seed).eval(), cfg


def reference_logits(model, wave: torch.Tensor) -> torch.Tensor:
    """BEATs' token outputs through its own predictor, averaged over tokens (its fine-tuned forward, before the
    sigmoid it returns)."""
    predictor, model.predictor = model.predictor, None
    try:
        with torch.no_grad():
            tokens, _ = model.extract_features(wave)
            return predictor(tokens).mean(dim=1)
    finally:
        model.predictor = predictor


def cmkd_logits(model, meta, wave: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """cmkd's way from audio: the checkpoint's front-end, its normalisation, its network."""
    frontend = checkpoint_frontend(meta)
    feats, _ = frontend.clips(list(wave.to(dtype)), frontend.frames_of(wave.shape[1]), torch.device("cpu"))
    with torch.no_grad():
        return model.to(dtype)(meta.input_normalization(feats.to(dtype)))


def test_converted_finetuned_beats_gives_the_references_logits_from_audio(tmp_path, size="test"):
    """(beats_base: docs/scripts/reference_check.py, docs/bring-your-own-teacher.md.)"""
    ref, cfg = reference_beats(size)
    torch.save({"cfg": cfg, "model": ref.state_dict()}, tmp_path / "BEATs_iter3_finetuned.pt")
    report = convert(tmp_path / "BEATs_iter3_finetuned.pt", tmp_path / "converted.pt")
    assert report["model"] == f"beats_{size}" and report["classes"] == CLASSES
    assert report["normalization"] == {"mean": 15.41663, "std": 6.55582}
    model, meta = load_checkpoint(tmp_path / "converted.pt")
    assert meta.frontend_name == "beats" and isinstance(checkpoint_frontend(meta), BEATsFbank)
    wave = torch.randn(2, 16000 * 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.1

    # from audio, each its own front-end, in float32 as both run in practice: the fbank's log of ~2^30-scaled
    # energies in float32 sets the floor (BEATs' preprocessing computes in float32 whatever it is given)
    theirs = reference_logits(ref.float(), wave.float())
    ours = cmkd_logits(model.eval(), meta, wave, torch.float32)
    assert ours.shape == (2, CLASSES)
    assert relative(ours, theirs) < 1e-3, (ours - theirs).abs().max()
    # the network alone in float64, fed BEATs' own normalised fbank (its GELU computes in float32 whatever it is
    # given, which sets this floor)
    fbank = ref.preprocess(wave.float()).double()
    with torch.no_grad():
        tokens = ref.double().encoder(ref.post_extract_proj(ref.layer_norm(
            ref.patch_embedding(fbank.unsqueeze(1)).flatten(2).transpose(1, 2))))[0]
        theirs64 = ref.predictor(tokens).mean(dim=1)
        ours64 = model.double()(fbank)
    assert relative(ours64, theirs64) < 1e-6, (ours64 - theirs64).abs().max()


def test_pretrained_beats_loads_as_a_starting_point_with_a_new_head(tmp_path):
    ref, cfg = reference_beats("test", finetuned=False)
    torch.save({"cfg": cfg, "model": ref.state_dict()}, tmp_path / "BEATs_iter3.pt")
    model = create_model("beats_test", num_classes=3, num_frames=128).eval()
    loaded = load_pretrained(model, tmp_path / "BEATs_iter3.pt")
    assert loaded["initialised"] == ["head.bias", "head.weight"]
    feats = torch.randn(2, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs = ref.encoder(ref.post_extract_proj(ref.layer_norm(
            ref.patch_embedding(feats.unsqueeze(1)).flatten(2).transpose(1, 2))))[0]
        ours = model.tokens(feats)
    assert relative(ours, theirs) < 1e-5
    with pytest.raises(PretrainedError, match="pre-trained BEATs, without a classifier.*models.<key>.pretrained"):
        convert(tmp_path / "BEATs_iter3.pt", tmp_path / "out.pt")


def test_a_beats_this_family_does_not_build_is_refused_by_name(tmp_path):
    ref, cfg = reference_beats("test")
    torch.save({"cfg": {**cfg, "layer_norm_first": True}, "model": ref.state_dict()}, tmp_path / "prenorm.pt")
    with pytest.raises(PretrainedError, match=r"prenorm.pt: a BEATs this family does not build: layer_norm_first"):
        convert(tmp_path / "prenorm.pt", tmp_path / "out.pt")
    torch.save({"cfg": {**cfg, "max_distance": 1280}, "model": ref.state_dict()}, tmp_path / "far.pt")
    model = create_model("beats_test", num_classes=CLASSES, num_frames=128)
    with pytest.raises(PretrainedError, match=r"max_distance=1280 \(this model's models.<key>.max_distance is 800"):
        load_pretrained(model, tmp_path / "far.pt")
    torch.save(ref.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(PretrainedError, match="without its cfg"):
        convert(tmp_path / "bare.pt", tmp_path / "out.pt")
