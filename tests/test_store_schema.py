"""Each Zarr store records its schema version: a store of a newer version, or another kind of store, is refused
with the reason; a store written before the schema (no version) is read as it is."""
import numpy as np
import pytest
import zarr

from pipeline import layout
from pipeline.cache.dump import audited
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore
from pipeline.stores.schema import StoreSchemaError, read_many

from .conftest import cache_path


def test_feature_store_versions(in_workspace):
    group = zarr.open_group(layout.FEATURES, mode="r+")
    assert dict(group.attrs["cmkd_schema"]) == {"kind": "features", "version": 1}
    group.attrs["cmkd_schema"] = {"kind": "features", "version": 99}
    with pytest.raises(StoreSchemaError, match="features store schema version 99; this cmkd reads versions 0 to 1"):
        FeatureStore(layout.FEATURES)
    group.attrs["cmkd_schema"] = {"kind": "predictions", "version": 1}
    with pytest.raises(StoreSchemaError, match="a predictions store, not a features store"):
        FeatureStore(layout.FEATURES)
    del group.attrs["cmkd_schema"]  # written before the schema: version 0, read as it is
    assert FeatureStore(layout.FEATURES).classes


def test_prediction_store_versions(with_teacher):
    group = zarr.open_group(cache_path(), mode="r+")
    assert dict(group.attrs["cmkd_schema"]) == {"kind": "predictions", "version": 1}
    group.attrs["cmkd_schema"] = {"kind": "predictions", "version": 2}
    with pytest.raises(StoreSchemaError, match="upgrade cmkd"):
        PredictionStore(cache_path())


def test_read_many_is_fancy_indexing_a_block_at_a_time(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 5)).astype(np.float32)
    array = zarr.open_group(tmp_path / "s.zarr", mode="w").create_array("logits", data=values, chunks=(1, 5),
                                                                        shards=(64, 5))
    rows = rng.integers(0, 300, size=120)  # any order, repeats
    np.testing.assert_array_equal(read_many(array, rows, block=50), values[rows])
    np.testing.assert_array_equal(read_many(values, rows, block=7), values[rows])
    assert read_many(array, np.array([], dtype=np.int64)).shape == (0, 5)


def test_audited_rows_are_all_or_a_seeded_ordered_sample():
    rows = np.arange(10, 1000, 3)
    assert audited(rows, cap=len(rows)) is rows
    sample = audited(rows, cap=50)
    assert len(sample) == 50 and np.all(np.diff(sample) > 0) and np.isin(sample, rows).all()
    np.testing.assert_array_equal(sample, audited(rows, cap=50))
