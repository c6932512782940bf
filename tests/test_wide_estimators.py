"""Estimators that lean on width ÷ atoms (GFRE, LFRE, SVCCA): a sensitivity study on synthetic spaces with a known
relation plus noise, and GFRE's cross-validated ridge against scikit-matter. ``python tests/test_wide_estimators.py``
prints the study's table (the README quotes it)."""

from __future__ import annotations

import numpy as np
import pytest

from platonic.compare import fan_in, metrics, oracle
from platonic.compare.neighbours import nearest_neighbours
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings

SETTINGS = SimilaritySettings()
GRID = SETTINGS.ridge_grid  # the default grid of relative ridges
N_STRUCTURES, ATOMS = 200, 2  # 400 atoms; GFRE's training half holds 200
WIDTHS = (10, 50, 100, 150, 190, 200, 210, 250, 400)


def latent_pair(seed: int, width: int, q: int = 5, width_y: int = 20, noise_x: float = 1.0, noise_y: float = 0.5):
    """x = z A + noise (``width`` columns), y = z C + noise (``width_y``) from one q-dimensional Gaussian latent z,
    on structures of ``ATOMS`` atoms; returns x, y, the structures and the population GFRE of y from x: the root of
    the share of y's variance that the best linear map from x leaves, ``tr(S_yy - S_yx S_xx^-1 S_xy) / tr(S_yy)``."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(N_STRUCTURES), ATOMS)
    z = rng.normal(size=(len(groups), q))
    a, c = rng.normal(size=(q, width)) / np.sqrt(q), rng.normal(size=(q, width_y)) / np.sqrt(q)
    x = z @ a + noise_x * rng.normal(size=(len(groups), width))
    y = z @ c + noise_y * rng.normal(size=(len(groups), width_y))
    s_xx, s_xy = a.T @ a + noise_x**2 * np.eye(width), a.T @ c
    s_yy = c.T @ c + noise_y**2 * np.eye(width_y)
    population = np.sqrt(1 - np.trace(s_xy.T @ np.linalg.solve(s_xx, s_xy)) / np.trace(s_yy))
    return x, y, groups, float(population)


def gfre_study(width: int, seed: int = 0) -> dict:
    """GFRE of y from x at one width: the population value, the fixed ridge of earlier runs (1e-8) and the
    cross-validated one (with the ridge it chose), on the fan-in's structure split and folds."""
    x, y, groups, population = latent_pair(seed, width)
    train = fan_in.train_mask(groups, SETTINGS)
    folds = fan_in.cv_folds(groups, train, SETTINGS.seed + 5)
    value, ridge = oracle.gfre_cross_validated(x, y, train, folds, GRID)
    fixed = oracle.gfre(x, y, train, 1e-8)
    return {"width": width, "ratio": width / train.sum(), "population": population, "fixed": fixed, "cv": value,
            "ridge": ridge}  # fmt: skip


def lfre_study(width: int, k: int = 20, seed: int = 0) -> dict:
    """LFRE of y from x on k = 20 neighbours at one width: the fixed ridge of earlier runs and the cross-validated."""
    x, y, groups, _ = latent_pair(seed, width)
    folds = fan_in.cv_folds(groups, fan_in.train_mask(groups, SETTINGS), SETTINGS.seed + 5)
    neighbours = nearest_neighbours(x, k, "exact")
    queries = np.arange(0, len(x), 2)
    squared, ridge = metrics.lfre_errors_chosen(x, y, neighbours, queries, GRID, folds)
    fixed = oracle.lfre(x, y, neighbours, queries, 1e-8)
    return {"width": width, "ratio": width / k, "fixed": fixed, "cv": float(np.sqrt(squared.mean())), "ridge": ridge}


def svcca_study(width: int, n: int = 400, seed: int = 0) -> dict:
    """SVCCA of two independent Gaussian spaces of ``width`` columns on n atoms, without and with the default cap."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, width)), rng.normal(size=(n, width))
    xc, yc = x - x.mean(0), y - y.mean(0)
    covariances = xc.T @ yc, xc.T @ xc, yc.T @ yc
    cap = metrics.svcca_max_directions(n, SETTINGS.svcca_max_fraction)
    return {"width": width, "directions": metrics.principal_directions_count(covariances[1]), "cap": cap,
            "uncapped": metrics.svcca_from_covariances(*covariances),
            "capped": metrics.svcca_from_covariances(*covariances, max_directions=cap)}  # fmt: skip


@pytest.fixture(scope="module")
def gfre_rows():
    return [gfre_study(width) for width in WIDTHS]


def test_fixed_ridge_gfre_drifts_above_one_near_the_training_atoms_and_the_cross_validated_one_does_not(gfre_rows):
    """As the source's width approaches the 200 training atoms, GFRE with the fixed relative ridge 1e-8 (least
    squares) overfits: above 1, worse than predicting the mean. The cross-validated ridge stays within 0.1 of the
    population value at every width, before, at and past the sample size."""
    by_width = {row["width"]: row for row in gfre_rows}
    assert by_width[10]["fixed"] == pytest.approx(by_width[10]["population"], abs=0.03)  # narrow: both are fine
    for width in (190, 200, 210):
        assert by_width[width]["fixed"] > 1.5, width
    for row in gfre_rows:
        assert abs(row["cv"] - row["population"]) < 0.1, row
        assert row["cv"] <= row["fixed"] + 1e-3, row
    assert {by_width[w]["ridge"] for w in (190, 200, 210)} >= {1e-2}  # a ridge far above the fixed one


def test_fixed_ridge_lfre_peaks_where_the_width_meets_the_neighbours_and_the_cross_validated_one_does_not():
    """LFRE's local fit on k = 20 neighbours interpolates them once the width reaches k: with the fixed ridge its
    error peaks there, far above 1; the cross-validated ridge stays below 0.9 at every width."""
    rows = {width: lfre_study(width) for width in (10, 20, 50, 200)}
    assert rows[20]["fixed"] > 2.0
    for row in rows.values():
        assert row["cv"] < 0.9, row
        assert row["cv"] <= row["fixed"] + 1e-6, row


def test_svcca_of_independent_wide_spaces_stays_at_the_chance_level_of_narrow_ones():
    """Independent spaces share nothing, yet uncapped SVCCA grows with the directions it keeps (the mean squared
    canonical correlation is r / (n - 1)): 0.14 at 10 columns, above 0.6 at 200 on 400 atoms. Capped at 0.1 of the
    atoms (40 directions) it stays at the value of two independent 40-column spaces, below sqrt(40 / 399)."""
    rows = {width: svcca_study(width) for width in (10, 40, 100, 200, 399)}
    assert rows[10]["uncapped"] == rows[10]["capped"] < 0.2
    assert rows[200]["uncapped"] > 0.6 and rows[399]["uncapped"] > 0.8
    narrow = rows[40]["capped"]
    for width in (100, 200, 399):
        assert rows[width]["capped"] == pytest.approx(narrow, abs=0.02), width
        assert rows[width]["capped"] < np.sqrt(rows[width]["cap"] / 399)


def test_svcca_chance_level_of_wide_spaces_is_that_of_narrow_ones():
    """Through the fan-in: the chance level (rows permuted by structure) of SVCCA between two wide related spaces
    (300 columns on 400 atoms) is within 0.03 of that between two narrow ones (40 columns), and the store records
    the directions each space needs and the ratio the cell depends on."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(N_STRUCTURES), ATOMS)
    z = rng.normal(size=(len(groups), 5))
    spaces = {
        f"{name}{i}": z @ rng.normal(size=(5, width)) + rng.normal(size=(len(groups), width))
        for name, width in (("narrow", 40), ("wide", 300))
        for i in (0, 1)
    }
    settings = SimilaritySettings(metrics=("svcca",), bootstrap=0, permutations=3, threads=1)
    ds = pairwise_similarity({"raw": spaces}, structure_index=groups, settings=settings)
    chance = ds["chance"].sel(metric="svcca", space="raw")
    narrow = float(chance.sel(model_a="narrow0", model_b="narrow1"))
    wide = float(chance.sel(model_a="wide0", model_b="wide1"))
    assert narrow < 0.35 and wide == pytest.approx(narrow, abs=0.03)
    directions = ds["svcca_directions"].sel(space="raw")
    assert int(directions.sel(model="wide0")) > ds.attrs["svcca_max_directions"] == 40
    ratio = float(ds["width_ratio"].sel(metric="svcca", space="raw", model_a="wide0", model_b="wide1"))
    wide_directions = [int(directions.sel(model=m)) for m in ("wide0", "wide1")]
    assert ratio == max(wide_directions) / 400 > ds.attrs["width_ratio_threshold"]


def test_cross_validated_gfre_equals_scikit_matter_on_the_same_split_and_folds():
    """scikit-matter's global_reconstruction_error (its StandardFlexibleScaler, and its Ridge2FoldCV given the same
    two folds by structure, the same absolute ridges and the summed squared error as its score) against GFRE with the
    cross-validated ridge: the same chosen ridge and the same value; with the one fixed ridge 1e-8, the same value
    above 1 that the fixed ridge gives a wide source."""
    pytest.importorskip(
        "skmatter", reason="scikit-matter is a dev extra (make setup-dev); without it this cross-check cannot run"
    )
    from skmatter.linear_model import Ridge2FoldCV
    from skmatter.metrics import global_reconstruction_error

    x, y, groups, _ = latent_pair(1, 190)
    train = fan_in.train_mask(groups, SETTINGS)
    folds = fan_in.cv_folds(groups, train, SETTINGS.seed + 5)
    value, ridge = oracle.gfre_cross_validated(x, y, train, folds, GRID)
    train_rows = np.flatnonzero(train)
    centred = x[train] - x[train].mean(0)
    scaled = centred / np.sqrt(np.mean(np.sum(centred**2, axis=1)))
    largest = np.linalg.eigvalsh(scaled.T @ scaled)[-1]
    split = [(np.flatnonzero(folds[train_rows] == 0), np.flatnonzero(folds[train_rows] == 1))]

    def summed_squares(estimator, target, prediction):  # skmatter passes the targets through an identity estimator
        return -float(np.sum((estimator.predict(target) - prediction) ** 2))

    def scikit_matter(ridges):
        estimator = Ridge2FoldCV(alphas=np.asarray(ridges) * largest, alpha_type="absolute", cv=split,
                                 scoring=summed_squares)  # fmt: skip
        error = global_reconstruction_error(x, y, train_idx=train_rows, test_idx=np.flatnonzero(~train),
                                            estimator=estimator)  # fmt: skip
        return float(error), float(estimator.alpha_) / largest

    expected, chosen = scikit_matter(GRID)
    assert chosen == pytest.approx(ridge, rel=1e-12) and ridge > 1e-8
    assert value == pytest.approx(expected, rel=1e-7)
    fixed, _ = scikit_matter([1e-8])
    assert oracle.gfre(x, y, train, 1e-8) == pytest.approx(fixed, rel=1e-6) and fixed > 1


def study_table() -> str:
    """The sensitivity study as the README's markdown tables."""
    lines = ["| width | width ÷ training atoms | population GFRE | GFRE, ridge 1e-8 | GFRE, ridge by CV (chosen) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in (gfre_study(width) for width in WIDTHS):
        lines.append(f"| {r['width']} | {r['ratio']:.2f} | {r['population']:.3f} | {r['fixed']:.3f} |"
                     f" {r['cv']:.3f} ({r['ridge']:g}) |")  # fmt: skip
    lines += ["", "| width | width ÷ neighbours | LFRE, ridge 1e-8 | LFRE, ridge by CV (chosen) |", "|---|---|---|---|"]
    for r in (lfre_study(width) for width in (5, 10, 20, 50, 200, 400)):
        lines.append(f"| {r['width']} | {r['ratio']:.2f} | {r['fixed']:.3f} | {r['cv']:.3f} ({r['ridge']:g}) |")
    lines += ["", "| width | directions for 99 % | SVCCA, no cap | SVCCA, capped |", "|---|---|---|---|"]
    for r in (svcca_study(width) for width in (10, 40, 100, 200, 399)):
        lines.append(f"| {r['width']} | {r['directions']} | {r['uncapped']:.3f} | {r['capped']:.3f} ({r['cap']}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(study_table())
