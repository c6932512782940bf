"""Per-element reference fit: recovers planted references exactly, and its errors are the planted noise."""

import numpy as np
import pytest

from platonic.analysis.formation import composition_fractions, fit_references, formation_errors


def _planted(n=60, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    pool = np.array([3, 8, 14, 26])
    numbers = [rng.choice(pool, size=rng.integers(2, 9)) for _ in range(n)]
    elements, fractions = composition_fractions(numbers)
    mu = np.array([-1.9, -4.9, -5.4, -8.3])
    formation = rng.normal(-1.0, 0.5, size=n)
    energy = formation + fractions @ mu + noise * rng.normal(size=n)
    return numbers, elements, fractions, mu, formation, energy


def test_fractions_sum_to_one_and_count_atoms():
    elements, fractions = composition_fractions([np.array([8, 8, 26]), np.array([3])])
    np.testing.assert_array_equal(elements, [3, 8, 26])
    np.testing.assert_allclose(fractions, [[0, 2 / 3, 1 / 3], [1, 0, 0]])


def test_exact_energies_give_the_planted_references_and_zero_error():
    _, elements, fractions, mu, formation, energy = _planted()
    train = np.arange(len(energy)) < 40
    fit = fit_references(energy, formation, elements, fractions, train)
    np.testing.assert_allclose(fit.mu, mu, atol=1e-10)
    assert fit.n_train == 40 and fit.train_rmse < 1e-10
    np.testing.assert_allclose(formation_errors(energy, formation, fractions, fit)[~train], 0.0, atol=1e-10)


def test_errors_on_held_out_structures_are_the_added_noise():
    """Noise only on the held-out energies: the references come out exact and the errors are that noise."""
    _, elements, fractions, mu, formation, energy = _planted()
    train = np.arange(len(energy)) < 40
    shift = np.where(train, 0.0, np.linspace(-0.2, 0.3, len(energy)))
    fit = fit_references(energy + shift, formation, elements, fractions, train)
    np.testing.assert_allclose(formation_errors(energy + shift, formation, fractions, fit)[~train], shift[~train],
                               atol=1e-10)  # fmt: skip


def test_an_element_unseen_in_training_has_no_reference():
    numbers = [np.array([3, 8])] * 5 + [np.array([3, 26])]
    elements, fractions = composition_fractions(numbers)
    energy = np.arange(6.0)
    train = np.array([True] * 5 + [False])
    fit = fit_references(energy, np.zeros(6), elements, fractions, train)
    assert np.isnan(fit.mu[elements.tolist().index(26)])
    errors = formation_errors(energy, np.zeros(6), fractions, fit)
    assert np.isnan(errors[5]) and np.all(np.isfinite(errors[:5]))
    with pytest.raises(ValueError, match="no training structure"):
        fit_references(energy, np.zeros(6), elements, fractions, np.zeros(6, dtype=bool))
