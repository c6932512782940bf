import numpy as np
import pytest
import xarray as xr

from platonic.compare.agreement import PAIR_KINDS, all_space_pairs, space_pairs, space_steps


def _store(models=("a", "b", "c", "ctrl"), control=(False, False, False, True), seed=0):
    """A similarity store of a symmetric metric (linear CKA) and a directed one (GFRE) in three spaces, with
    intervals but no chance level."""
    rng = np.random.default_rng(seed)
    n = len(models)
    shape = (2, 3, n, n)
    value = rng.uniform(size=shape)
    value[0] = (value[0] + np.swapaxes(value[0], -1, -2)) / 2  # CKA is symmetric
    dims = ("metric", "space", "model_a", "model_b")
    return xr.Dataset(
        {"similarity": (dims, value), "ci_low": (dims, value - 0.1), "ci_high": (dims, value + 0.2),
         "control": ("model", list(control))},
        coords={"metric": ["linear_cka", "gfre"], "space": ["raw", "unit", "anchor"], "model_a": list(models),
                "model_b": list(models), "model": list(models)},
        attrs={"directed_metrics": ["gfre"]},
    )  # fmt: skip


def test_space_steps_set_each_space_against_the_one_before_it_the_last_first():
    ds = _store()
    assert space_steps(ds) == [("unit", "anchor"), ("raw", "unit")]
    assert space_steps(ds.sel(space=["anchor", "raw"])) == [("raw", "anchor")]  # in SPACES order, not the store's
    assert space_steps(ds.sel(space=["anchor"])) == []


def test_space_pairs_of_a_symmetric_metric_by_hand():
    ds = _store()
    pairs = space_pairs(ds, "linear_cka", "raw", "anchor")
    expected = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]  # each unordered pair once
    names = ["a", "b", "c", "ctrl"]
    assert list(zip(pairs["model_a"].values, pairs["model_b"].values, strict=True)) == [
        (names[i], names[j]) for i, j in expected
    ]
    assert pairs["kind"].values.tolist() == [0, 0, 1, 0, 1, 1]  # ctrl is the control
    assert [PAIR_KINDS[k] for k in pairs["kind"].values[:3]] == ["MLIP - MLIP", "MLIP - MLIP", "MLIP - control"]
    value = ds["similarity"].sel(metric="linear_cka").values
    for k, (i, j) in enumerate(expected):
        assert pairs["similarity"].sel(space="raw").values[k] == value[0, i, j]
        assert pairs["similarity"].sel(space="anchor").values[k] == value[2, i, j]
        assert pairs["ci_high"].sel(space="anchor").values[k] == value[2, i, j] + 0.2
    assert "chance" not in pairs and "chance_sd" not in pairs  # the store has none
    # the shift: mean anchor - raw over the three pairs of two MLIPs
    mlips = [(0, 1), (0, 2), (1, 2)]
    assert pairs.attrs["shift"] == pytest.approx(np.mean([value[2, i, j] - value[0, i, j] for i, j in mlips]))


def test_space_pairs_of_a_directed_metric_take_both_directions_and_skip_undefined_pairs():
    ds = _store()
    ds["similarity"].loc[{"metric": "gfre", "space": "unit", "model_a": "a", "model_b": "b"}] = np.nan
    pairs = space_pairs(ds, "gfre", "unit", "anchor")
    assert pairs.sizes["pair"] == 12  # 4 x 3 ordered pairs
    assert ("b", "a") in set(zip(pairs["model_a"].values, pairs["model_b"].values, strict=True))
    value = ds["similarity"].sel(metric="gfre").values
    mlips = [(i, j) for i in range(3) for j in range(3) if i != j and (i, j) != (0, 1)]  # a -> b undefined
    assert pairs.attrs["shift"] == pytest.approx(np.mean([value[2, i, j] - value[1, i, j] for i, j in mlips]))
    # no pair of two MLIPs: no shift
    only = space_pairs(ds.isel(model_a=[0, 3], model_b=[0, 3]).sel(model=["a", "ctrl"]), "gfre", "unit", "anchor")
    assert only["kind"].values.tolist() == [1, 1] and np.isnan(only.attrs["shift"])


def test_all_space_pairs_cover_every_metric_and_step():
    ds = _store()
    every = all_space_pairs(ds)
    assert list(every) == [("linear_cka", "unit", "anchor"), ("linear_cka", "raw", "unit"),
                           ("gfre", "unit", "anchor"), ("gfre", "raw", "unit")]  # fmt: skip
    assert every["gfre", "raw", "unit"].identical(space_pairs(ds, "gfre", "raw", "unit"))
