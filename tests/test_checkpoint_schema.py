"""One checkpoint schema (pipeline/models/checkpoint.py): written and read in one place, versioned; checkpoints of the
version before the schema are read, or refused with the reason; a newer version is refused."""
import pytest
import torch

from pipeline.models import build_model
from pipeline.models.checkpoint import SCHEMA_VERSION, Checkpoint, CheckpointError, load_checkpoint, save_checkpoint

NETWORK = {"name": "ast_test", "fstride": 16, "tstride": 16}


def version_1(model, **overrides) -> dict:
    """A checkpoint as cmkd wrote it before the schema: the weights under `model`, every other key beside them."""
    return {"model": model.state_dict(), "code": {}, "role": "student", "run": "main", "seed": 0,
            "architecture": "ast", "model_config": NETWORK, "num_classes": 3, "num_frames": 64, "num_mel_bins": 128,
            "classes": ["a", "b", "c"], "features_fingerprint": "f" * 64, "normalization": {"mean": -5.0, "std": 4.0},
            "multi_label": True, "features": {"target_frames": 64}, "teacher": None, "distill": None, "train": None,
            "history": [{"epoch": 1}], "selection": {"select": "last", "epoch": 1}, "weight_average": None,
            "ensemble": None, "cross_fit": None, **overrides}


def test_a_checkpoint_round_trips_through_its_schema(tmp_path):
    model = build_model(NETWORK, 3, 64, 128)
    meta = Checkpoint(role="student", architecture="ast", network=NETWORK, num_classes=3, num_frames=64,
                      num_mel_bins=128, classes=["a", "b", "c"], task="multi-label",
                      normalization={"mean": -5.0, "std": 4.0}, world_size=2)
    save_checkpoint(tmp_path / "model.pt", model, meta)
    stored = torch.load(tmp_path / "model.pt", weights_only=True)
    assert stored["schema_version"] == SCHEMA_VERSION and set(stored) == {"schema_version", "weights", "ensemble",
                                                                           "meta"}
    loaded, read = load_checkpoint(tmp_path / "model.pt")
    assert read.model_copy(update={"code": {}}) == meta and read.code["source_sha256"]
    assert read.task_kind.multi_label and read.input_normalization.mean == -5.0 and read.world_size == 2
    x = torch.randn(2, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_version_1_checkpoints_are_read(tmp_path):
    model = build_model(NETWORK, 3, 64, 128)
    torch.save(version_1(model), tmp_path / "old.pt")
    loaded, meta = load_checkpoint(tmp_path / "old.pt")
    assert meta.network == NETWORK and meta.task == "multi-label" and meta.classes == ["a", "b", "c"]
    assert meta.history == [{"epoch": 1}] and meta.world_size == 1  # before the schema: one process
    x = torch.randn(2, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize("missing", ["normalization", "classes"])
def test_version_1_checkpoints_that_cannot_be_fed_correctly_are_refused_with_the_reason(tmp_path, missing):
    model = build_model(NETWORK, 3, 64, 128)
    torch.save(version_1(model, **{missing: None}), tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=f"old.pt: an old cmkd checkpoint \\(schema version 1\\) without "
                                              f"{missing}: it does not say how its inputs were normalised"):
        load_checkpoint(tmp_path / "old.pt")


def test_a_newer_schema_and_a_foreign_file_are_refused(tmp_path):
    model = build_model(NETWORK, 3, 64, 128)
    torch.save({"schema_version": SCHEMA_VERSION + 1, "weights": model.state_dict(), "meta": {}},
               tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="new.pt: checkpoint schema version 3; .* upgrade cmkd"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="weights.pt: not a cmkd checkpoint .*cmkd convert"):
        load_checkpoint(tmp_path / "weights.pt")
    torch.save({"schema_version": SCHEMA_VERSION, "weights": model.state_dict(), "meta": {"role": "student"}},
               tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="broken.pt: not a valid cmkd checkpoint .*network"):
        load_checkpoint(tmp_path / "broken.pt")
