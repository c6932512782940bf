import numpy as np
import pytest
import xarray as xr

from platonic.store import StoreError, dataset_to_atoms, open_store, structures_to_dataset, write_store


def test_structure_store_round_trip(tmp_path, few_structures):
    path = write_store(structures_to_dataset(few_structures, source="sample"), tmp_path / "s.zarr")
    ds = open_store(path)
    atoms, ids = dataset_to_atoms(ds)
    assert ids == few_structures.ids
    for a, b in zip(atoms, few_structures.atoms, strict=True):
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell.array, b.cell.array)
    counts = [len(a) for a in few_structures.atoms]
    assert ds.sizes["atom"] == sum(counts)
    np.testing.assert_array_equal(ds["site"].values, np.concatenate([np.arange(c) for c in counts]))
    np.testing.assert_array_equal(ds["structure_id"].values, np.repeat(few_structures.ids, counts))
    assert ds.attrs["n_atoms"] == sum(counts)
    assert ds.attrs["complete"] is True


def test_incomplete_store_is_refused(tmp_path):
    xr.Dataset({"x": ("atom", np.arange(3))}).to_zarr(tmp_path / "half.zarr", consolidated=False)
    with pytest.raises(StoreError, match="incomplete"):
        open_store(tmp_path / "half.zarr")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing.zarr")


def test_failed_write_leaves_previous_store_intact(tmp_path):
    path = write_store(xr.Dataset({"x": ("atom", np.arange(3))}), tmp_path / "a.zarr")

    class Unwritable:
        pass

    bad = xr.Dataset({"x": ("atom", np.array([Unwritable()] * 3, dtype=object))})
    with pytest.raises(ValueError):
        write_store(bad, path)
    np.testing.assert_array_equal(open_store(path)["x"].values, np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.zarr"]  # no temporary leftovers
