"""The spaces of every comparison: the unit space discards each row's length and nothing else."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings
from platonic.spaces import SPACES, in_dependency_order, model_spaces


def test_the_unit_space_is_the_raw_rows_scaled_to_length_one_and_shares_them_with_the_raw_space():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(30, 6)).astype(np.float32)
    spaces = model_spaces(raw, rng.normal(size=(30, 4)))
    assert list(spaces) == list(SPACES) == ["raw", "unit", "anchor"]
    unit = spaces["unit"].x
    assert unit.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(unit * np.linalg.norm(raw.astype(np.float64), axis=1, keepdims=True), raw, rtol=1e-6)
    assert spaces["raw"].unit is unit and spaces["unit"].unit is unit  # one array, not three


def test_a_rotated_copy_with_rows_rescaled_is_identical_in_the_unit_space_and_not_in_the_raw_space():
    """x -> diag(s) x Q with Q orthogonal and s > 0 per row: linear CKA 1 and the same neighbours in the unit
    space (closed form: the unit rows are rotated, nothing else), while the raw spaces differ."""
    rng = np.random.default_rng(1)
    n, d = 240, 8
    x = rng.normal(size=(n, d)) + 2.0
    rotation = ortho_group.rvs(d, random_state=2)
    scale = rng.uniform(0.2, 5.0, size=(n, 1))
    copy = scale * x @ rotation
    per_model = {"a": model_spaces(x, x[:, :3]), "b": model_spaces(copy, x[:, :3])}
    spaces = {space: {m: f[space] for m, f in per_model.items()} for space in ("raw", "unit")}
    settings = SimilaritySettings(metrics=("linear_cka", "mutual_knn"), k=6, bootstrap=0, permutations=0)
    ds = pairwise_similarity(spaces, structure_index=np.arange(n) // 4, settings=settings)
    value = ds["similarity"].sel(model_a="a", model_b="b")
    assert value.sel(metric="linear_cka", space="unit") == pytest.approx(1.0, abs=1e-10)
    assert value.sel(metric="mutual_knn", space="unit") == 1.0
    assert value.sel(metric="linear_cka", space="raw") < 0.9
    # cosine neighbours ignore the rows' lengths in the raw space too: the same lists in both spaces
    assert value.sel(metric="mutual_knn", space="raw") == 1.0


def test_a_space_that_takes_its_neighbours_from_another_comes_after_it():
    assert in_dependency_order(SPACES) == [("raw", "anchor"), ("unit",)]
    assert in_dependency_order(("unit", "anchor")) == [("unit", "anchor")]


def test_the_unit_space_takes_over_the_raw_spaces_cosine_metrics_and_they_equal_its_own():
    """The unit space takes the raw space's neighbour lists and its mutual k-NN, CKNNA and information imbalance
    (values, replicates, chance levels); computed afresh in the unit space alone they are the same numbers."""
    rng = np.random.default_rng(3)
    n = 200
    base = rng.normal(size=(n, 5))
    raw = {
        "a": base @ rng.normal(size=(5, 7)) * rng.uniform(0.5, 2, (n, 1)),
        "b": np.tanh(base) @ rng.normal(size=(5, 6)),
    }
    per_model = {m: model_spaces(x, x[:, :2]) for m, x in raw.items()}
    settings = SimilaritySettings(metrics=("mutual_knn", "cknna", "information_imbalance", "linear_cka"), k=5,
                                  queries=80, bootstrap=10, permutations=2)  # fmt: skip
    groups = np.arange(n) // 5
    both = pairwise_similarity({s: {m: f[s] for m, f in per_model.items()} for s in ("raw", "unit")}, groups, settings)
    alone = pairwise_similarity({"unit": {m: f["unit"] for m, f in per_model.items()}}, groups, settings)
    shared = ["mutual_knn", "cknna", "information_imbalance"]
    for name in ("similarity", "bootstrap_replicates", "chance"):
        taken = both[name].sel(space="unit", metric=shared).values
        np.testing.assert_array_equal(taken, both[name].sel(space="raw", metric=shared).values)
        np.testing.assert_allclose(taken, alone[name].sel(space="unit", metric=shared).values, rtol=1e-12, atol=1e-12)
    cka = both["similarity"].sel(metric="linear_cka", model_a="a", model_b="b")
    assert cka.sel(space="unit").item() != cka.sel(space="raw").item()
    assert (
        cka.sel(space="unit").item()
        == alone["similarity"].sel(metric="linear_cka", space="unit", model_a="a", model_b="b").item()
    )
