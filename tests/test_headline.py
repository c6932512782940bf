"""The computed headline: group means over model pairs, their intervals, and the text of the report's first page."""

import itertools

import numpy as np
import pytest

from platonic.compare.headline import headline_rows, headline_text, pair_groups, step_reading
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings
from platonic.spaces import SPACES, model_spaces


@pytest.fixture(scope="module")
def store():
    """Two CHGNet-like models sharing a signal, one SevenNet-like model sharing part of it, one unrelated control."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(80), 4)
    signal = rng.normal(size=(320, 4))
    raw = {
        "c1": signal + 0.3 * rng.normal(size=(320, 4)),
        "c2": signal + 0.3 * rng.normal(size=(320, 4)),
        "s1": signal[:, :2] @ rng.normal(size=(2, 5)) + rng.normal(size=(320, 5)),
        "ctrl": rng.normal(size=(320, 3)),
    }
    per_model = {m: model_spaces(x, np.tanh(x[:, :3])) for m, x in raw.items()}
    spaces = {space: {m: features[space] for m, features in per_model.items()} for space in SPACES}
    settings = SimilaritySettings(metrics=("linear_cka", "mutual_knn"), k=5, bootstrap=60, permutations=2)
    ds = pairwise_similarity(spaces, structure_index=groups, settings=settings)
    ds["control"] = ("model", np.array([False, False, False, True]))
    ds["family"] = ("model", np.array(["chgnet", "chgnet", "sevenn", "element"]))
    ds.attrs.update(bootstrap=60, permutations=2)
    return ds


def test_pairs_are_grouped_by_family_and_control(store):
    assert pair_groups(store) == {
        "within family": [(0, 1)],
        "across families": [(0, 2), (1, 2)],
        "model vs control": [(0, 3), (1, 3), (2, 3)],
    }


def test_group_means_and_their_intervals_come_from_the_pairs_and_the_shared_replicates(store):
    rows = {(r["metric"], r["space"], r["group"]): r for r in headline_rows(store)}
    assert len(rows) == 2 * 3 * 6  # metrics x groups x (raw, unit, anchor, unit - raw, anchor - unit, anchor - raw)
    cka = store["similarity"].sel(metric="linear_cka")
    across = rows["linear_cka", "raw", "across families"]
    assert across["mean"] == pytest.approx((cka.sel(space="raw").values[0, 2] + cka.sel(space="raw").values[1, 2]) / 2)
    assert across["n_pairs"] == 2
    # the interval of a group mean: the replicates' mean over its pairs, percentiles shifted by the bootstrap bias
    replicates = store["bootstrap_replicates"].sel(metric="linear_cka", space="raw").values
    means = (replicates[0, 2] + replicates[1, 2]) / 2
    bias = means.mean() - across["mean"]
    assert across["ci_low"] == pytest.approx(np.percentile(means, 2.5) - bias)
    assert across["ci_high"] == pytest.approx(np.percentile(means, 97.5) - bias)
    # the difference between the spaces uses the same draws in both
    change = rows["linear_cka", "anchor - raw", "within family"]
    anchor_reps = store["bootstrap_replicates"].sel(metric="linear_cka", space="anchor").values[0, 1]
    difference = anchor_reps - replicates[0, 1]
    assert change["mean"] == pytest.approx(cka.sel(space="anchor").values[0, 1] - cka.sel(space="raw").values[0, 1])
    assert change["ci_low"] == pytest.approx(np.percentile(difference, 2.5) - (difference.mean() - change["mean"]))
    assert change["differs"] == (change["ci_low"] > 0 or change["ci_high"] < 0)
    # same-family models agree more than either agrees with the unrelated control, far beyond the intervals
    within, control = rows["linear_cka", "raw", "within family"], rows["linear_cka", "raw", "model vs control"]
    assert within["ci_low"] > control["ci_high"]
    assert control["chance"] == pytest.approx(
        np.mean(store["chance"].sel(metric="linear_cka", space="raw").values[[0, 1, 2], 3])
    )


def test_the_steps_add_up_and_cosine_neighbours_do_not_see_the_normalisation(store):
    rows = {(r["metric"], r["space"], r["group"]): r for r in headline_rows(store)}
    for metric, group in itertools.product(("linear_cka", "mutual_knn"), ("within family", "across families")):
        normalising, anchors = rows[metric, "unit - raw", group], rows[metric, "anchor - unit", group]
        total = rows[metric, "anchor - raw", group]
        assert normalising["mean"] + anchors["mean"] == pytest.approx(total["mean"], abs=1e-12)
        assert normalising["mean"] == pytest.approx(
            rows[metric, "unit", group]["mean"] - rows[metric, "raw", group]["mean"]
        )
    # a row and its unit row have the same cosine neighbours: normalising cannot move mutual k-NN
    knn = rows["mutual_knn", "unit - raw", "across families"]
    assert knn["mean"] == 0 and knn["ci_low"] == 0 and knn["ci_high"] == 0 and knn["differs"] is False
    # the raw spaces here differ in scale from row to row, so normalising moves linear CKA
    assert rows["linear_cka", "unit - raw", "across families"]["mean"] != 0


def test_the_reading_names_the_step_that_moves_the_agreement():
    def row(mean, differs):
        return {"mean": mean, "differs": differs}

    assert step_reading(row(0.04, True), row(0.01, False)) == (
        "normalising raises it by 0.04; the anchors add nothing beyond their interval"
    )
    assert step_reading(row(0.0, False), row(-0.06, True)) == (
        "the anchors lower it by 0.06; normalising changes nothing beyond its interval"
    )
    assert "opposite directions" in step_reading(row(0.05, True), row(-0.02, True))
    assert "neither" in step_reading(row(0.05, False), row(-0.02, False))
    assert step_reading(row(0.05, ""), row(-0.02, "")).startswith("no intervals")


def test_the_text_states_the_numbers_of_the_rows(store):
    rows = headline_rows(store)
    text = headline_text(rows, store)
    within = next(
        r for r in rows if r["group"] == "within family" and r["space"] == "raw" and r["metric"] == "mutual_knn"
    )
    assert f"{within['mean']:.2f} [{within['ci_low']:.2f}, {within['ci_high']:.2f}]" in text
    step = next(
        r
        for r in rows
        if r["group"] == "within family" and r["space"] == "anchor - unit" and r["metric"] == "linear_cka"
    )
    assert f"{step['mean']:+.2f} [{step['ci_low']:+.2f}, {step['ci_high']:+.2f}]" in text
    assert "60 structure-bootstrap replicates" in text and "linear CKA" in text and "mutual k-NN" in text
    assert text.startswith(".. list-table::")
    assert text.count("   * - ") == 1 + 2 * 3  # the header, then one row per metric and group
    # it is valid reStructuredText that docutils renders as one table
    from docutils.core import publish_parts

    html = publish_parts(text, writer_name="html", settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    assert html.count("<table") == 1 and html.count("<tr") == 1 + 2 * 3


def test_without_a_bootstrap_the_headline_has_values_but_no_intervals(store):
    plain = store.isel(replicate=slice(0, 0))
    plain.attrs["bootstrap"] = 0
    rows = headline_rows(plain)
    assert all(np.isnan(r["ci_low"]) for r in rows) and all(np.isfinite(r["mean"]) for r in rows)
    assert "no intervals" in headline_text(rows, plain)
