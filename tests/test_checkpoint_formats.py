"""Checkpoints people bring, checked against an independent implementation with random weights (no download):
a small Hugging Face ASTForAudioClassification saved to disk, the same weights in the AST repository's layout,
both loaded by cmkd and compared logit by logit on the same fbank input."""
import json

import numpy as np
import pytest
import torch

from pipeline.models import PretrainedError, build_model
from pipeline.models.checkpoint import load_checkpoint
from pipeline.models.convert import convert
from pipeline.models.pretrained import load_pretrained

transformers = pytest.importorskip("transformers")  # a test-only extra: the independent reference

FRAMES, MELS, CLASSES = 128, 128, 5
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """A random 2-layer HF AST (width 64, 2 heads: cmkd's ast_test), strides 10/10 over 128 frames, saved.
    Weights drawn 10x wider than HF's default, so attention is far from uniform and a mapping mistake (query and
    key swapped, say) moves the logits by ~1, not by less than the 1e-4 tolerance."""
    torch.manual_seed(0)
    config = transformers.ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=256, max_length=FRAMES, num_mel_bins=MELS, frequency_stride=10,
                                    time_stride=10, num_labels=CLASSES, initializer_range=0.2,
                                    id2label={i: f"sound {i}" for i in range(CLASSES)},
                                    label2id={f"sound {i}": i for i in range(CLASSES)})
    model = transformers.ASTForAudioClassification(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a swapped or missing tensor shows
        for name, p in model.named_parameters():
            if "layernorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    folder = tmp_path_factory.mktemp("hf") / "ast-random"
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"mean": AUDIOSET_MEAN, "std": AUDIOSET_STD}))
    return model, folder


@pytest.fixture(scope="module")
def fbank_input():
    """Raw fbank-like features [2, frames, mel bins] and the normalised input both models take."""
    raw = torch.randn(2, FRAMES, MELS, generator=torch.Generator().manual_seed(1)) * 4 - 5
    return raw, (raw - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)


def reference_logits(model, x):
    with torch.no_grad():
        return model(input_values=x).logits


def official_layout(hf_folder):
    """The HF weights rewritten as the AST repository saves them: DataParallel `module.v.*` timm DeiT keys with
    fused qkv, `module.mlp_head.{0,1}`, and the leftover ImageNet heads."""
    from safetensors.torch import load_file

    sd = load_file(hf_folder / "model.safetensors")
    p = "audio_spectrogram_transformer."
    out = {"module.v.cls_token": sd[p + "embeddings.cls_token"],
           "module.v.dist_token": sd[p + "embeddings.distillation_token"],
           "module.v.pos_embed": sd[p + "embeddings.position_embeddings"],
           "module.v.patch_embed.proj.weight": sd[p + "embeddings.patch_embeddings.projection.weight"],
           "module.v.patch_embed.proj.bias": sd[p + "embeddings.patch_embeddings.projection.bias"],
           "module.v.norm.weight": sd[p + "layernorm.weight"], "module.v.norm.bias": sd[p + "layernorm.bias"],
           "module.v.head.weight": torch.randn(1000, 64), "module.v.head.bias": torch.zeros(1000),
           "module.v.head_dist.weight": torch.randn(1000, 64), "module.v.head_dist.bias": torch.zeros(1000),
           "module.mlp_head.0.weight": sd["classifier.layernorm.weight"],
           "module.mlp_head.0.bias": sd["classifier.layernorm.bias"],
           "module.mlp_head.1.weight": sd["classifier.dense.weight"],
           "module.mlp_head.1.bias": sd["classifier.dense.bias"]}
    for i in range(2):
        a, b = f"{p}encoder.layer.{i}.", f"module.v.blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{b}attn.qkv.{kind}"] = torch.cat([sd[f"{a}attention.attention.{n}.{kind}"]
                                                    for n in ("query", "key", "value")])
            for theirs, ours in (("layernorm_before", "norm1"), ("layernorm_after", "norm2"),
                                 ("attention.output.dense", "attn.proj"), ("intermediate.dense", "mlp.fc1"),
                                 ("output.dense", "mlp.fc2")):
                out[f"{b}{ours}.{kind}"] = sd[f"{a}{theirs}.{kind}"]
    return out


def test_hugging_face_ast_gives_the_same_logits(hf_model, fbank_input, tmp_path):
    model, folder = hf_model
    raw, x = fbank_input
    expected = reference_logits(model, x)
    report = convert(folder, tmp_path / "converted.pt")
    assert report["model"] == "ast_test" and report["frames"] == FRAMES and report["source"]["format"] == "hf"
    ours, ckpt = load_checkpoint(tmp_path / "converted.pt")
    assert ckpt["classes"] == [f"sound {i}" for i in range(CLASSES)]  # the class list travels with the model
    assert ckpt["normalization"] == {"mean": AUDIOSET_MEAN, "std": AUDIOSET_STD}
    assert ckpt["model_config"]["layer_norm_eps"] == 1e-12
    with torch.no_grad():
        got = ours((raw - ckpt["normalization"]["mean"]) / (2 * ckpt["normalization"]["std"]))
    assert (got - expected).abs().max() <= 1e-4, (got - expected).abs().max()
    # named by its weights file instead of its folder: the same
    assert convert(folder / "model.safetensors", tmp_path / "again.pt")["tensors mapped"] == report["tensors mapped"]


def test_official_ast_layout_gives_the_same_logits(hf_model, fbank_input, tmp_path):
    model, folder = hf_model
    raw, x = fbank_input
    expected = reference_logits(model, x)
    torch.save(official_layout(folder), tmp_path / "audioset_like.pth")
    (tmp_path / "classes.csv").write_text("index,mid,display_name\n" + "".join(
        f"{i},/m/{i:04d},sound {i}\n" for i in range(CLASSES)))
    report = convert(tmp_path / "audioset_like.pth", tmp_path / "converted.pt", classes=tmp_path / "classes.csv",
                     mean=AUDIOSET_MEAN, std=AUDIOSET_STD)
    assert report["source"]["format"] == "ast" and report["frames"] == FRAMES  # 12 x 12 patches: 128 frames
    ours, ckpt = load_checkpoint(tmp_path / "converted.pt")
    assert ckpt["classes"] == [f"sound {i}" for i in range(CLASSES)]
    # The AST code's norms (DeiT 1e-6, head 1e-5), not HF's 1e-12: the difference is far below the tolerance
    with torch.no_grad():
        got = ours(x)
    assert (got - expected).abs().max() <= 1e-4, (got - expected).abs().max()

    # the comparison can tell: query and key swapped in block 0 moves the logits far beyond the tolerance
    swapped = official_layout(folder)
    q = swapped["module.v.blocks.0.attn.qkv.weight"]
    swapped["module.v.blocks.0.attn.qkv.weight"] = torch.cat([q[64:128], q[:64], q[128:]])
    torch.save(swapped, tmp_path / "swapped.pth")
    convert(tmp_path / "swapped.pth", tmp_path / "swapped.pt", mean=AUDIOSET_MEAN, std=AUDIOSET_STD)
    with torch.no_grad():
        assert (load_checkpoint(tmp_path / "swapped.pt")[0](x) - expected).abs().max() > 0.1


def test_official_ast_fine_tunes_on_another_grid_and_class_count(hf_model, tmp_path):
    """As the ESC-50 recipe starts from the AudioSet AST: 512 -> 256 frames here, another head."""
    _, folder = hf_model
    torch.save(official_layout(folder), tmp_path / "audioset_like.pth")
    model = build_model({"name": "ast_test", "fstride": 10, "tstride": 10}, 3, 256, MELS)
    loaded = load_pretrained(model, tmp_path / "audioset_like.pth")
    assert loaded["initialised"] == ["head.1.bias", "head.1.weight"]  # 5 classes there, 3 here
    source = official_layout(folder)["module.v.pos_embed"]  # 12 x 12 grid -> 12 x 25, interpolated in time
    assert model.v.pos_embed.shape[1] == 12 * 25 + 2
    np.testing.assert_array_equal(model.v.pos_embed[0, :2].detach(), source[0, :2])


def test_unconvertible_files_are_refused_by_name(tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(PretrainedError, match="other.pth: not a checkpoint cmkd can convert"):
        convert(tmp_path / "other.pth", tmp_path / "out.pt")
    (tmp_path / "hf").mkdir()
    with pytest.raises(PretrainedError, match="a folder without model.safetensors"):
        convert(tmp_path / "hf", tmp_path / "out.pt")
