"""Compare environments, not copies: unique-atom and multiplicity-weighted metrics, other-structure neighbours."""

import numpy as np
import pytest

from platonic.anchors import compared_atoms
from platonic.compare import metrics, oracle
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings

MOMENT_METRICS = ("linear_cka", "debiased_cka", "svcca", "procrustes", "gfre")


def _crystals(seed=0, n_structures=40, noise=0.0):
    """Unique environments of ``n_structures`` structures, each repeated 1-4 times (its symmetry copies, equal up to
    ``noise``) in two related spaces: returns unique rows (a, b), multiplicities, structure of each unique row, and
    the same expanded to all atoms with each atom's orbit representative (global index)."""
    rng = np.random.default_rng(seed)
    per_structure = rng.integers(2, 6, size=n_structures)
    structure = np.repeat(np.arange(n_structures), per_structure)
    n = structure.size
    latent = rng.normal(size=(n, 4))
    a = np.tanh(latent @ rng.normal(size=(4, 6))) + 0.1 * rng.normal(size=(n, 6))
    b = latent @ rng.normal(size=(4, 5)) + 0.2 * rng.normal(size=(n, 5))
    multiplicity = rng.integers(1, 5, size=n)
    rows = np.repeat(np.arange(n), multiplicity)
    # expanded order: atoms of one structure together, copies of an environment next to each other
    order = np.lexsort((rows, structure[rows]))
    rows = rows[order]
    first = np.r_[True, rows[1:] != rows[:-1]]
    representative = np.flatnonzero(first)[np.cumsum(first) - 1]
    jitter = noise * rng.normal(size=(rows.size, 1))
    return a, b, multiplicity, structure, (a[rows] + jitter, b[rows] + jitter, structure[rows], representative, rows)


def test_multiplicity_weights_on_unique_atoms_reproduce_every_moment_metric_on_all_atoms():
    a, b, multiplicity, structure, (a_all, b_all, structure_all, _, _) = _crystals()
    settings = SimilaritySettings(metrics=MOMENT_METRICS, threads=1, seed=2)
    weighted = pairwise_similarity({"raw": {"a": a, "b": b}}, structure, settings, weights=multiplicity)
    expanded = pairwise_similarity({"raw": {"a": a_all, "b": b_all}}, structure_all, settings)
    got, want = weighted["similarity"].values, expanded["similarity"].values
    np.testing.assert_allclose(got[..., 0, 1], want[..., 0, 1], rtol=1e-9)  # a vs b, both directions
    np.testing.assert_allclose(got[..., 1, 0], want[..., 1, 0], rtol=1e-9)
    # a space with itself: 1 or 0 up to round-off (arccos near 1 and a ridge residual near 0 amplify it)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # and the closed form of linear CKA on the expanded rows
    assert float(
        weighted["similarity"].sel(metric="linear_cka", space="raw", model_a="a", model_b="b")
    ) == pytest.approx(oracle.linear_cka(a_all, b_all), rel=1e-12)
    # uniform weights are a different number (each environment once)
    uniform = pairwise_similarity({"raw": {"a": a, "b": b}}, structure, settings)
    assert float(
        uniform["similarity"].sel(metric="linear_cka", space="raw", model_a="a", model_b="b")
    ) == pytest.approx(oracle.linear_cka(a, b), rel=1e-12)
    assert weighted.attrs["n_weighted_atoms"] == multiplicity.sum() == len(a_all)


def test_unique_mode_keeps_one_representative_per_orbit():
    *_, (a_all, _, _, representative, rows) = _crystals()
    valid = np.ones(len(a_all), bool)
    valid[:3] = False  # a structure's first atoms could not be embedded
    kept = compared_atoms(valid, representative, "unique")
    np.testing.assert_array_equal(kept, valid & (representative == np.arange(len(a_all))))
    assert len(np.unique(rows[kept])) == kept.sum()  # one row per environment
    np.testing.assert_array_equal(compared_atoms(valid, representative, "all"), valid)


def test_unique_mode_mutual_knn_and_cknna_equal_brute_force_on_the_deduplicated_rows():
    a, b, multiplicity, structure, (a_all, b_all, structure_all, representative, _) = _crystals(noise=1e-7)
    keep = compared_atoms(np.ones(len(a_all), bool), representative, "unique")
    x, y = a_all[keep], b_all[keep]
    settings = SimilaritySettings(metrics=("mutual_knn", "cknna"), k=5, neighbour_search="exact", threads=1)
    ds = pairwise_similarity({"raw": {"a": x, "b": y}}, structure_all[keep], settings)
    nx, ny = oracle.knn_indices(x, 5), oracle.knn_indices(y, 5)
    assert float(ds["similarity"].sel(metric="mutual_knn", space="raw", model_a="a", model_b="b")) == pytest.approx(
        metrics.mutual_knn_alignment(nx, ny), abs=1e-12
    )
    assert float(ds["similarity"].sel(metric="cknna", space="raw", model_a="a", model_b="b")) == pytest.approx(
        oracle.cknna(x, y, nx, ny), abs=1e-12
    )
    # with every copy, near-identical twins are each other's neighbours in both spaces: agreement inflates
    every = pairwise_similarity({"raw": {"a": a_all, "b": b_all}}, structure_all, settings)
    assert float(every["similarity"].sel(metric="mutual_knn", space="raw", model_a="a", model_b="b")) > float(
        ds["similarity"].sel(metric="mutual_knn", space="raw", model_a="a", model_b="b")
    )


def _masked_knn(x, groups, k):
    """Brute force: cosine neighbours with the row's own group masked out, ties by lower index."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    similarity[groups[:, None] == groups[None, :]] = -np.inf
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def test_other_structures_neighbours_equal_brute_force_with_same_structure_pairs_masked():
    a, b, _, structure, _ = _crystals(seed=3)
    settings = SimilaritySettings(
        metrics=("mutual_knn", "cknna", "information_imbalance"), k=4, neighbour_search="exact",
        neighbours="other-structures", threads=1, queries=10_000,
    )  # fmt: skip
    ds = pairwise_similarity({"raw": {"a": a, "b": b}}, structure, settings)
    na, nb = _masked_knn(a, structure, 4), _masked_knn(b, structure, 4)
    assert not (structure[na] == structure[:, None]).any()
    value = float(ds["similarity"].sel(metric="mutual_knn", space="raw", model_a="a", model_b="b"))
    assert value == pytest.approx(metrics.mutual_knn_alignment(na, nb), abs=1e-12)
    assert float(ds["similarity"].sel(metric="cknna", space="raw", model_a="a", model_b="b")) == pytest.approx(
        oracle.cknna(a, b, na, nb), abs=1e-12
    )
    # information imbalance: rank in b of a's nearest other-structure neighbour, among other-structure atoms
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    distance = ((ub[:, None, :] - ub[None, :, :]) ** 2).sum(axis=2)
    distance[structure[:, None] == structure[None, :]] = np.inf
    target = distance[np.arange(len(b)), na[:, 0]]
    ranks = (distance < target[:, None] - metrics.RANK_TOLERANCE).sum(axis=1) + 1
    assert float(
        ds["similarity"].sel(metric="information_imbalance", space="raw", model_a="a", model_b="b")
    ) == pytest.approx(2 / len(b) * ranks.mean(), rel=1e-12)
    # and it differs from neighbours drawn from any structure
    free = pairwise_similarity({"raw": {"a": a, "b": b}}, structure, SimilaritySettings(
        metrics=("mutual_knn",), k=4, neighbour_search="exact", threads=1))  # fmt: skip
    assert float(free["similarity"].sel(metric="mutual_knn", space="raw", model_a="a", model_b="b")) != pytest.approx(
        value
    )
