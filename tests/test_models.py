import pytest
import torch

from pipeline.models import create_model, list_models


@pytest.mark.parametrize("name,kwargs", [
    ("ast_test", {}),
    ("ast_test", {"fstride": 16, "tstride": 16}),
    ("efficientnet_test", {"pooling": "mean"}),
    ("efficientnet_test", {"pooling": "attention"}),
])
def test_forward_and_backward(name, kwargs):
    model = create_model(name, num_classes=7, num_frames=100, **kwargs)
    x = torch.randn(2, 100, 128)
    logits = model(x)
    assert logits.shape == (2, 7)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("frames,grid", [(1024, (12, 101)), (512, (12, 50))])
def test_ast_overlapping_patch_grid(frames, grid):
    with torch.device("meta"):
        model = create_model("ast_base", num_classes=527, num_frames=frames)
    assert model.grid_size == grid
    assert model.v.pos_embed.shape == (1, grid[0] * grid[1] + 2, 768)  # + cls and distillation tokens
    assert model.v.patch_embed.proj.stride == (10, 10) and model.v.patch_embed.proj.in_channels == 1


@pytest.mark.parametrize("name,kwargs,millions", [
    ("ast_base", {}, 87.0),
    ("efficientnet_b2", {"pooling": "mean"}, 8.4),
    ("efficientnet_b2", {"pooling": "attention"}, 13.6),
])
def test_parameter_counts_match_the_paper(name, kwargs, millions):
    with torch.device("meta"):  # no weights allocated
        model = create_model(name, num_classes=527, num_frames=1024, **kwargs)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert count == pytest.approx(millions, rel=0.02)


def test_unknown_model_lists_the_registry():
    with pytest.raises(KeyError, match="ast_base"):
        create_model("ast_huge", num_classes=2, num_frames=100)
    assert {"ast_test", "ast_tiny", "ast_small", "ast_base", "efficientnet_b0", "efficientnet_b7"} <= set(list_models())
