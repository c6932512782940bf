"""Layer x layer similarity (platonic.compare.layers, the layers stage): known answers by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_stores import write_study
from scipy.stats import ortho_group

from platonic.cli import main
from platonic.compare.layers import Layer, depth_curves, layer_similarity
from platonic.compare.oracle import linear_cka
from platonic.embedding import embedding_dataset
from platonic.settings import SimilaritySettings
from platonic.spaces import SPACES
from platonic.store import open_store, write_store

SETTINGS = {"atoms": "all", "k": 5, "subsample": 80, "queries": 60, "bootstrap": 8, "permutations": 2, "threads": 2}
METRICS = ("linear_cka", "mutual_knn")


def _layers(seed=0, n_structures=40):
    """Model ``alpha``: layer 0 random, layer 1 = layer 0 times an orthogonal matrix, layer 2 a nonlinear map of
    layer 0; model ``beta``: layer 0 unrelated noise, layer 1 = alpha's layer 0 rotated, in another width."""
    rng = np.random.default_rng(seed)
    structure_index = np.repeat(np.arange(n_structures), rng.integers(2, 6, n_structures))
    n = len(structure_index)
    a0 = rng.normal(size=(n, 6)) @ rng.normal(size=(6, 8))
    a1 = a0 @ ortho_group.rvs(8, random_state=seed)
    a2 = np.tanh(a0 @ rng.normal(size=(8, 5)))
    b0 = rng.normal(size=(n, 4))
    b1 = np.hstack([a0, np.zeros((n, 2))]) @ ortho_group.rvs(10, random_state=seed + 1)
    return structure_index, {"alpha": [a0, a1, a2], "beta": [b0, b1]}


def _spaces(features, anchor_rows):
    from platonic.projection import anchor_projection

    return {"raw": features, "anchor": anchor_projection(features, features[anchor_rows]).astype(np.float64)}


def test_layer_similarity_knows_itself_orthogonal_transforms_and_the_best_match():
    structure_index, models = _layers()
    anchor_rows = np.arange(0, len(structure_index), 7)
    layers = {
        Layer(model, k, f"block{k}"): _spaces(x, anchor_rows) for model, xs in models.items() for k, x in enumerate(xs)
    }
    settings = SimilaritySettings(**{**SETTINGS, "metrics": METRICS})
    ds = layer_similarity(layers, structure_index, settings)
    cka = ds["similarity"].sel(metric="linear_cka")
    knn = ds["similarity"].sel(metric="mutual_knn")
    labels = [str(label) for label in ds["layer_a"].values]
    assert labels == [f"{m}/block{k}" for m, xs in models.items() for k in range(len(xs))]
    # a layer with itself: 1, in both spaces and for both metrics
    for space in ("raw", "anchor"):
        np.testing.assert_allclose(np.diag(cka.sel(space=space).values), 1.0, atol=1e-12)
        np.testing.assert_allclose(np.diag(knn.sel(space=space).values), 1.0, atol=1e-12)
    # layer 1 of alpha is an orthogonal transform of layer 0: CKA 1 in the raw space; cosines (and so the anchor
    # coordinates and the neighbour lists) do not change at all
    for pair in (("alpha/block0", "alpha/block1"), ("alpha/block0", "beta/block1"), ("alpha/block1", "beta/block1")):
        for space in ("raw", "anchor"):
            assert float(cka.sel(space=space, layer_a=pair[0], layer_b=pair[1])) == pytest.approx(1.0, abs=1e-10)
            assert float(knn.sel(space=space, layer_a=pair[0], layer_b=pair[1])) == pytest.approx(1.0, abs=1e-12)
    # an ordinary pair against the metric itself
    expected = linear_cka(models["alpha"][0], models["alpha"][2])
    assert float(cka.sel(space="raw", layer_a="alpha/block0", layer_b="alpha/block2")) == pytest.approx(expected)
    # depth: each model's stored layers from 0 to 1
    np.testing.assert_allclose(ds["depth_a"].values, [0.0, 0.5, 1.0, 0.0, 1.0])
    # the best match of alpha's layer 0 in beta is beta's layer 1, and the other way round
    best = ds["best_layer"].sel(metric="linear_cka", space="raw")
    assert best.sel(layer_a="alpha/block0", other="beta").item() == "block1"
    assert best.sel(layer_a="beta/block1", other="alpha").item() in ("block0", "block1")
    value = ds["best_similarity"].sel(metric="linear_cka", space="raw", layer_a="alpha/block0", other="beta")
    assert float(value) == pytest.approx(1.0, abs=1e-10)
    row = cka.sel(space="raw", layer_a="beta/block0").values[:3]
    assert float(ds["best_similarity"].sel(metric="linear_cka", space="raw", layer_a="beta/block0", other="alpha"))\
        == pytest.approx(row.max())  # fmt: skip
    # intervals and chance levels as for models: a layer with itself does not move, unrelated layers sit near chance
    assert float(ds["ci_low"].sel(metric="linear_cka", space="raw", layer_a="alpha/block2", layer_b="alpha/block2"))\
        == pytest.approx(1.0)  # fmt: skip
    assert np.isfinite(ds["chance"].sel(metric="linear_cka").values).all()


def test_depth_curves_by_hand():
    """Three models' layers stored out of depth order (alpha: 0.5, 0, 1; beta: 1, 0; gamma: one layer); each layer
    against its model's deepest layer, and the mean of its best matches in the other models, NaN left out."""
    import xarray as xr

    rng = np.random.default_rng(0)
    model = ["alpha", "alpha", "alpha", "beta", "beta", "gamma"]
    depth = [0.5, 0.0, 1.0, 1.0, 0.0, 0.0]
    similarity = rng.uniform(size=(1, 2, 6, 6))
    best = rng.uniform(size=(1, 2, 6, 3))
    best[0, 1, 0, 1] = np.nan  # alpha's first layer has no match in beta in the anchor space
    ds = xr.Dataset(
        {"similarity": (("metric", "space", "layer_a", "layer_b"), similarity),
         "ci_low": (("metric", "space", "layer_a", "layer_b"), similarity - 0.1),
         "ci_high": (("metric", "space", "layer_a", "layer_b"), similarity + 0.1),
         "best_similarity": (("metric", "space", "layer_a", "other"), best)},
        coords={"metric": ["linear_cka"], "space": ["raw", "anchor"], "other": ["alpha", "beta", "gamma"],
                "model_a": ("layer_a", model), "depth_a": ("layer_a", depth)},
        attrs={"n_atoms": 9},
    )  # fmt: skip
    curves = depth_curves(ds, "linear_cka")
    order, last = [1, 0, 2, 4, 3, 5], [2, 2, 2, 3, 3, 5]  # each model's layers by depth; its deepest
    assert curves["model"].values.tolist() == ["alpha"] * 3 + ["beta"] * 2 + ["gamma"]
    assert curves["depth"].values.tolist() == [0.0, 0.5, 1.0, 0.0, 1.0, 0.0]
    assert curves.attrs == {"n_atoms": 9, "metric": "linear_cka"}
    others = {"alpha": [1, 2], "beta": [0, 2], "gamma": [0, 1]}
    for s in range(2):
        for k, (row, deepest) in enumerate(zip(order, last, strict=True)):
            assert curves["to_last"].values[s, k] == similarity[0, s, row, deepest]
            assert curves["ci_low"].values[s, k] == similarity[0, s, row, deepest] - 0.1
            matches = [best[0, s, row, o] for o in others[model[row]] if np.isfinite(best[0, s, row, o])]
            assert curves["best_of_others"].values[s, k] == pytest.approx(sum(matches) / len(matches), rel=1e-12)
    assert curves["best_of_others"].values[1, 1] == best[0, 1, 0, 2]  # alpha's layer at 0.5: gamma's match alone
    # one model: no other models to match; a store without intervals: none in the curves
    alone = depth_curves(ds.isel(layer_a=[0, 1, 2], layer_b=[0, 1, 2]).drop_vars(["ci_low", "ci_high"]), "linear_cka")
    assert "best_of_others" not in alone and "ci_low" not in alone


def _multi_layer_study(tmp_path):
    """The layers of ``_layers`` in embedding stores as the embed stage writes them (``embedding`` the last layer)."""
    structure_index, models = _layers(seed=3)
    n = len(structure_index)
    rng = np.random.default_rng(3)
    anchor_rows = np.sort(rng.choice(n, size=10, replace=False))
    paths = write_study(tmp_path, {m: xs[-1] for m, xs in models.items()}, rng.choice([3, 8], size=n),
                        structure_index, {}, anchor_rows)  # fmt: skip
    structures = open_store(paths["structures"])
    stores = []
    for model, xs in models.items():
        layers = tuple((k, f"block{k}") for k in range(len(xs)))
        features = {"embedding": xs[-1].astype(np.float32)}
        features.update({f"embedding_layer_{k}": x.astype(np.float32) for k, x in enumerate(xs)})
        ds = embedding_dataset(structures, features, np.ones(n, bool), [""] * structures.sizes["structure"], model,
                               {}, layers)  # fmt: skip
        stores.append(str(write_store(ds, tmp_path / f"layers/{model}.zarr")))
    anchors = open_store(paths["anchors"]).load()
    anchors.attrs.update(atoms="all")
    write_store(anchors, tmp_path / "anchors-all.zarr")
    return stores, str(tmp_path / "anchors-all.zarr"), paths, models, anchor_rows


def test_layers_stage_writes_the_store_table_and_figures(tmp_path):
    stores, anchors, paths, models, anchor_rows = _multi_layer_study(tmp_path)
    out, table = tmp_path / "layers.zarr", tmp_path / "layers.csv"
    heatmaps, depth = tmp_path / "layers.png", tmp_path / "depth.png"
    assert main(["layers", str(out), str(table), "--embeddings", *stores, "--anchors", anchors,
                 "--settings", json.dumps(SETTINGS), "--layers", json.dumps({"metrics": list(METRICS)}),
                 "--heatmaps", str(heatmaps), "--depth", str(depth)]) == 0  # fmt: skip
    ds = open_store(out).load()
    n_atoms = open_store(stores[0]).sizes["atom"]
    assert ds.attrs["kind"] == "layer similarity"
    assert ds.attrs["n_atoms"] == ds.attrs["n_compared_atoms"] == n_atoms
    # the stage's anchor coordinates are the projection on the anchor atoms in each layer
    cka = ds["similarity"].sel(metric="linear_cka", space="anchor")
    assert float(cka.sel(layer_a="alpha/block0", layer_b="alpha/block1")) == pytest.approx(1.0, abs=1e-6)
    raw = ds["similarity"].sel(metric="linear_cka", space="raw")
    expected = linear_cka(models["alpha"][0].astype(np.float32), models["beta"][0].astype(np.float32))
    assert float(raw.sel(layer_a="alpha/block0", layer_b="beta/block0")) == pytest.approx(expected, rel=1e-6)
    rows = table.read_text().splitlines()
    assert len(rows) == 1 + len(METRICS) * len(SPACES) * 5 * 5
    assert rows[0].startswith("metric,space,model_a,layer_a,depth_a,model_b,layer_b,depth_b,value")
    assert heatmaps.stat().st_size > 10_000 and depth.stat().st_size > 10_000


def test_layers_stage_refuses_a_single_layer_store(tmp_path):
    stores, anchors, paths, _, _ = _multi_layer_study(tmp_path)
    with pytest.raises(ValueError, match=r"models\.alpha\.layers"):
        from platonic.settings import LayerSettings
        from platonic.stages.layers import run

        run([str(paths["embeddings"][0]), stores[1]], anchors, str(tmp_path / "x.zarr"), str(tmp_path / "x.csv"),
            SimilaritySettings(**SETTINGS), LayerSettings())  # fmt: skip
