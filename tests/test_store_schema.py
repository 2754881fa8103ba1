"""Each Zarr store records its schema version: a store of a newer version, or another kind of store, is refused
with the reason; a store written before the schema (no version) is read as it is."""
import pytest
import zarr

from pipeline import layout
from pipeline.stores.features import FeatureStore
from pipeline.stores.predictions import PredictionStore
from pipeline.stores.schema import StoreSchemaError

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
