import numpy as np
import pytest
from scipy.stats import ortho_group

from platonic.metrics import knn_indices, linear_cka, mutual_knn_alignment
from platonic.similarity import pairwise_similarity, similarity_table


@pytest.fixture(scope="module")
def spaces():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 6))
    models = {
        "a": base,
        "b": 2 * base @ ortho_group.rvs(6, random_state=1),  # a rotated copy of a
        "c": rng.normal(size=(300, 4)),
    }
    anchor = {name: x[:, :3] for name, x in models.items()}
    return {"raw": models, "anchor": anchor}


def test_every_pair_matches_the_metric_called_directly(spaces):
    ds = pairwise_similarity(spaces, k=5, threads=2)
    assert ds["similarity"].dims == ("metric", "space", "model_a", "model_b")
    for space, models in spaces.items():
        for a in models:
            for b in models:
                cka = ds["similarity"].sel(metric="linear_cka", space=space, model_a=a, model_b=b)
                assert float(cka) == pytest.approx(linear_cka(models[a], models[b]), abs=1e-12)
                knn = ds["similarity"].sel(metric="mutual_knn", space=space, model_a=a, model_b=b)
                expected = mutual_knn_alignment(knn_indices(models[a], 5), knn_indices(models[b], 5))
                assert float(knn) == expected
    raw = ds["similarity"].sel(space="raw")
    assert float(raw.sel(metric="linear_cka", model_a="a", model_b="b")) == pytest.approx(1.0)
    assert ds.attrs["k"] == 5 and ds.attrs["n_atoms"] == 300


def test_tidy_table_has_one_row_per_metric_space_and_ordered_pair(spaces):
    ds = pairwise_similarity(spaces, k=3)
    rows = similarity_table(ds)
    assert len(rows) == 2 * 2 * 3 * 3
    assert {row["n_atoms"] for row in rows} == {300}


def test_spaces_must_name_the_same_models(spaces):
    with pytest.raises(ValueError, match="expected"):
        pairwise_similarity({"raw": spaces["raw"], "anchor": {"a": spaces["anchor"]["a"]}})
