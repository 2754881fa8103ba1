
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


def test_compiled_training_step_matches_eager(monkeypatch):
    """train.compile: the compiled step (pipeline/training/loop.for_training) takes the same step as the eager one.
    On a GPU through inductor, the backend train.compile gets; on the CPU through dynamo's graph capture and AOT
    autograd without inductor's code generation, whose C++ build costs half a minute on a fresh machine and is not
    the path a GPU takes."""
    import functools
    from types import SimpleNamespace

    from pipeline.task import SingleLabel
    from pipeline.training.loop import for_training, train_step

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch, "compile", functools.partial(
        torch.compile, backend="inductor" if device.type == "cuda" else "aot_eager"))
    cfg = SimpleNamespace(channels_last=True, compile=True)
    torch.manual_seed(0)
    x, y = torch.randn(4, 50, 128, device=device), torch.eye(3, device=device)[torch.tensor([0, 1, 2, 0])]
    steps = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = create_model("ast_test", num_classes=3, num_frames=50).to(device)
        step_model = for_training(model, device, SimpleNamespace(**{**vars(cfg), "compile": compiled}))
        assert hasattr(step_model, "_orig_mod") == compiled  # torch.compile's wrapper, around the same module
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # Adam would magnify float noise in ~0 gradients
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        losses = [train_step(step_model, optimizer, scheduler, x, y, None, 1.0, SingleLabel()) for _ in range(2)]
        steps.append((torch.stack(losses), model.state_dict()))
    (eager_losses, eager), (compiled_losses, compiled) = steps
    torch.testing.assert_close(compiled_losses, eager_losses, atol=1e-4, rtol=1e-4)
    assert compiled.keys() == eager.keys()  # no `_orig_mod.` prefixes: the saved model is the eager module
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], atol=1e-4, rtol=1e-4)
