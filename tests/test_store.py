import warnings

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


def snakemake_marker(path):
    """What Snakemake does to a finished ``directory()`` output: an empty ``.snakemake_timestamp`` inside it."""
    (path / ".snakemake_timestamp").touch()
    return path


def test_a_store_opens_silently_after_snakemake_marked_it(tmp_path, few_structures):
    from platonic.compare import result_store

    store = snakemake_marker(write_store(structures_to_dataset(few_structures), tmp_path / "s.zarr"))
    result = snakemake_marker(result_store.save({"x": np.arange(4.0)}, tmp_path / "r.zarr", kind="test"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(store)
        assert ds.sizes["atom"] == sum(len(a) for a in few_structures.atoms)
        assert open_store(store, dask=False).attrs["complete"] is True
        assert result_store.load(result)[0]["x"].tolist() == [0.0, 1.0, 2.0, 3.0]
        xr.open_zarr(result)


def test_a_store_written_before_consolidation_still_opens_silently_with_open_store(tmp_path):
    """Stores of earlier runs have no consolidated metadata: xarray falls back to listing the folder, where it meets
    the marker; `open_store` reads them as before, without a warning."""
    path = tmp_path / "old.zarr"
    xr.Dataset({"x": ("atom", np.arange(3))}, attrs={"complete": True}).to_zarr(path, consolidated=False)
    snakemake_marker(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_store(path)["x"].values.tolist() == [0, 1, 2]
