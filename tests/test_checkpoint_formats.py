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
    assert ckpt.classes == [f"sound {i}" for i in range(CLASSES)]  # the class list travels with the model
    assert ckpt.normalization == {"mean": AUDIOSET_MEAN, "std": AUDIOSET_STD}
    assert ckpt.network["layer_norm_eps"] == 1e-12
    with torch.no_grad():
        got = ours((raw - ckpt.normalization["mean"]) / (2 * ckpt.normalization["std"]))
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
    assert ckpt.classes == [f"sound {i}" for i in range(CLASSES)]
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


class PSLAReference(torch.nn.Module):
    """PSLA's EffNetAttention (src/models/Models.py, HigherModels.py), written out as the PSLA repository has it:
    efficientnet_pytorch's EfficientNet with one input channel, AvgPool2d((4, 1)) over frequency, then
    MHeadAttention (4 heads of 1x1 Conv2d attention and class scores, both sigmoid, summed with head_weight)."""

    def __init__(self, b: int, classes: int):
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.effnet = EfficientNet.from_name(f"efficientnet-b{b}", in_channels=1)
        self.effnet._fc = torch.nn.Identity()
        channels = self.effnet._conv_head.out_channels
        self.avgpool = torch.nn.AvgPool2d((4, 1))
        self.attention = torch.nn.Module()
        self.attention.head_weight = torch.nn.Parameter(torch.tensor([0.25] * 4))
        self.attention.att = torch.nn.ModuleList(torch.nn.Conv2d(channels, classes, 1) for _ in range(4))
        self.attention.cla = torch.nn.ModuleList(torch.nn.Conv2d(channels, classes, 1) for _ in range(4))

    def forward(self, x):  # [B, T, F] -> probabilities [B, classes]
        x = self.effnet.extract_features(x.unsqueeze(1).transpose(2, 3))
        x = self.avgpool(x).transpose(2, 3)
        out = 0
        for i in range(4):
            att = torch.clamp(torch.sigmoid(self.attention.att[i](x))[:, :, :, 0], 1e-7, 1 - 1e-7)
            cla = torch.sigmoid(self.attention.cla[i](x))[:, :, :, 0]
            out = out + torch.sum(att / torch.sum(att, dim=2)[:, :, None] * cla, dim=2) * self.attention.head_weight[i]
        return out


def test_psla_efficientnet_gives_the_same_probabilities(tmp_path):
    pytest.importorskip("efficientnet_pytorch")
    torch.manual_seed(0)
    reference = PSLAReference(2, CLASSES)
    with torch.no_grad():  # trained-looking BatchNorm statistics and head weights, so every tensor matters
        for name, buffer in reference.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
        reference.attention.head_weight.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
        for conv in [*reference.attention.att, *reference.attention.cla]:
            conv.weight.mul_(20)  # probabilities spread over 0.44..0.61, not all ~0.5
    reference.eval()
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}  # saved from DataParallel, as PSLA does
    torch.save(state, tmp_path / "psla_b2.pth")
    report = convert(tmp_path / "psla_b2.pth", tmp_path / "converted.pt", frames=256)
    assert report["model"] == "tf_efficientnet_b2" and report["config"]["pooling"] == "psla"
    ours, ckpt = load_checkpoint(tmp_path / "converted.pt")
    x = torch.randn(2, 256, MELS, generator=torch.Generator().manual_seed(2))  # normalised features
    with torch.no_grad():
        expected = reference(x)
        got = torch.sigmoid(ours(x))  # cmkd gives logits; their sigmoid is PSLA's output
    assert (got - expected).abs().max() <= 5e-5, (got - expected).abs().max()
    # exactness decides the timm variant: the PyTorch-padded efficientnet_b2 with the same weights is further off
    plain = build_model({"name": "efficientnet_b2", "pooling": "psla"}, CLASSES, 256, MELS).eval()
    plain.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert (torch.sigmoid(plain(x)) - expected).abs().max() > 5e-5
    # PSLA divides by std, not 2 std: stored so that cmkd's (x - mean) / (2 std) is PSLA's input
    assert ckpt.normalization == {"mean": -4.6476, "std": 4.5699 / 2} and ckpt.task == "single-label"


def test_a_ready_teacher_is_adopted_as_is_and_evaluated_with_its_own_normalisation(in_workspace, tmp_path):
    """A converted checkpoint that predicts the dataset's own classes is the teacher without training; the
    pipeline feeds it inputs normalised as it was trained (not with this dataset's statistics)."""
    from pipeline import layout
    from pipeline.stores.features import FeatureStore
    from pipeline.stores.predictions import PredictionStore

    from .conftest import MAIN, cache_path, checkpoint, dump, evaluate, settings, train

    _, params = in_workspace
    store = FeatureStore(layout.FEATURES, MAIN.split)
    torch.manual_seed(0)
    config = transformers.ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
                                    max_length=store.num_frames, num_mel_bins=MELS, num_labels=len(store.classes),
                                    id2label=dict(enumerate(store.classes)),
                                    label2id={c: i for i, c in enumerate(store.classes)})
    folder = tmp_path / "ready"
    transformers.ASTForAudioClassification(config).save_pretrained(folder)
    convert(folder, tmp_path / "ready.pt", mean=-3.0, std=2.0)  # statistics unlike the tiny dataset's
    params["teacher"] = "ast"
    params["student"] = "cnn"
    params["models"]["ast"].update(pretrained=str(tmp_path / "ready.pt"), layer_norm_eps=1e-12, fstride=10,
                                   tstride=10)
    s = settings(params)

    train(s, "teacher", MAIN)
    ckpt = checkpoint("teacher", s=s)
    assert ckpt.selection["select"] == "adopted" and ckpt.history == []
    assert ckpt.adopted["sha256"] and ckpt.normalization == {"mean": -3.0, "std": 2.0}
    reference, _ = load_checkpoint(tmp_path / "ready.pt")
    rows = store.indices("test")
    x = torch.from_numpy(store.features[:][rows].astype(np.float32))
    with torch.no_grad():
        expected = reference((x + 3.0) / 4.0).numpy()
    result = evaluate(s, "teacher", MAIN)
    predicted = expected.argmax(1) == store.labels[rows].argmax(1)
    assert result["accuracy"] == pytest.approx(predicted.mean())

    dump(s, MAIN)  # the cached targets come from the teacher fed as it was trained, logit by logit
    np.testing.assert_allclose(PredictionStore(cache_path()).logits[:][rows], expected, atol=1e-5)
