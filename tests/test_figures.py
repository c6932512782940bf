import matplotlib.image
import numpy as np
import pytest
import xarray as xr

from platonic.compare.agreement import all_space_pairs, space_steps
from platonic.compare.model_space import classical_mds, linkage_and_mds, model_distances
from platonic.elements import periodic_group
from platonic.figures import (
    agreement_scatter,
    model_colours,
    model_statistics,
    model_tree,
    periodic_trends,
    save_figure,
    shared_space_maps,
    similarity_heatmaps,
)
from platonic.spaces import LABELS


def _agreement(ds):
    """The agreement figure of ``ds`` as the stage draws it: from every metric's pairs in every step."""
    return agreement_scatter(ds, all_space_pairs(ds))


def _similarity(models):
    n = len(models)
    values = np.full((2, 2, n, n), 0.5)
    for i in range(n):
        values[:, :, i, i] = 1.0
    return xr.Dataset(
        {"similarity": (("metric", "space", "model_a", "model_b"), values)},
        coords={
            "metric": ["linear_cka", "mutual_knn"],
            "space": ["raw", "anchor"],
            "model_a": models,
            "model_b": models,
        },
        attrs={"k": 10, "n_atoms": 123},
    )


def test_heatmap_has_one_annotated_panel_per_space(tmp_path):
    fig = similarity_heatmaps(_similarity(["m1", "m2", "m3"]), "mutual_knn")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["raw latent spaces", "shared anchor space"]
    texts = [t.get_text() for t in panels[0].texts]
    assert texts.count("1.00") == 3 and texts.count("0.50") == 6
    assert len(texts) == 9  # a store without intervals: one number per cell
    assert "123 atoms" in fig._suptitle.get_text() and "k = 10" in fig._suptitle.get_text()
    assert "\n" not in fig._suptitle.get_text()  # nothing to note: no intervals, no controls
    assert not panels[0].patches and not panels[0].lines  # no control hatching or separator
    path = save_figure(fig, tmp_path / "fig.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.std() > 0.05  # a real picture, not a blank canvas


def _uncertain(ds, control, seed=0):
    """``ds`` with what the similarity stage stores beside each value: bootstrap standard error and 95 % interval,
    chance level (mean and sd over permutations), and which models are controls."""
    rng = np.random.default_rng(seed)
    dims = ds["similarity"].dims
    value = ds["similarity"].values
    half = rng.uniform(0.01, 0.05, size=value.shape)
    models = ds["model_a"].values
    return (
        ds.assign_coords(model=models)
        .assign(
            standard_error=(dims, half / 2),
            ci_low=(dims, value - half),
            ci_high=(dims, value + half / 2),  # percentile intervals need not be symmetric
            chance=(dims, rng.uniform(0.0, 0.1, size=value.shape)),
            chance_sd=(dims, rng.uniform(0.0, 0.02, size=value.shape)),
            control=("model", np.asarray(control, dtype=bool)),
        )
        .assign_attrs(bootstrap=50, permutations=3)
    )


def test_heatmap_sets_controls_apart_and_annotates_intervals():
    models = ["a", "element", "b", "c"]
    ds = _uncertain(_similarity(models), [False, True, False, False])
    ds["ci_low"].loc[{"metric": "linear_cka", "space": "raw", "model_a": "a", "model_b": "b"}] = 0.123
    ds["ci_high"].loc[{"metric": "linear_cka", "space": "raw", "model_a": "a", "model_b": "b"}] = 0.789
    fig = similarity_heatmaps(ds, "linear_cka")
    raw, anchor = [ax for ax in fig.axes if ax.get_title()]
    order = [0, 2, 3, 1]  # the MLIPs in the order given, then the control
    for ax, space in [(raw, "raw"), (anchor, "anchor")]:
        np.testing.assert_array_equal(
            ax.images[0].get_array(), ds.similarity.sel(metric="linear_cka", space=space).values[np.ix_(order, order)]
        )
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            assert [t.get_text() for t in ticks] == ["a", "b", "c", "element (control)"]
            assert [t.get_fontstyle() for t in ticks] == ["normal"] * 3 + ["italic"]
        # every cell in the control's row or column is hatched, no other
        hatched = {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches if p.get_hatch()}
        assert hatched == {(i, j) for i in range(4) for j in range(4) if 3 in (i, j)}
        # one separator per axis between the last MLIP (position 2) and the control (3)
        lines = sorted((tuple(line.get_xdata()), tuple(line.get_ydata())) for line in ax.lines)
        assert lines == [((0, 1), (2.5, 2.5)), ((2.5, 2.5), (0, 1))]  # horizontal, vertical
    texts = {(t.get_position()[0], round(t.get_position()[1])): t.get_text() for t in raw.texts if "[" in t.get_text()}
    assert len(texts) == 12  # every off-diagonal cell, none on the diagonal
    assert texts[(1, 0)] == "[0.12, 0.79]"  # cell a (row) x b (column)
    cell = {"metric": "linear_cka", "space": "raw", "model_a": "c", "model_b": "element"}
    assert texts[(3, 2)] == f"[{ds.ci_low.sel(cell).item():.2f}, {ds.ci_high.sel(cell).item():.2f}]"
    note = fig._suptitle.get_text()
    assert "95 % interval, 50 structure-bootstrap resamples" in note and "control" in note


def test_heatmap_marks_cells_whose_width_ratio_passes_the_threshold():
    """A cell whose width ratio exceeds the store's width_ratio_threshold carries a dagger, the others not, and the
    title says why; a store without ratios marks nothing (the earlier test)."""
    ds = _similarity(["a", "b", "c"])
    ratio = np.full(ds["similarity"].shape, 0.05)
    ratio[1, 0, 2, 0] = 0.3  # mutual_knn, raw, c -> a
    ds = ds.assign(width_ratio=(ds["similarity"].dims, ratio)).assign_attrs(width_ratio_threshold=0.1)
    fig = similarity_heatmaps(ds, "mutual_knn")
    raw, anchor = [ax for ax in fig.axes if ax.get_title()]
    marked = {(round(t.get_position()[1]), round(t.get_position()[0])) for t in raw.texts if "\u2020" in t.get_text()}
    assert marked == {(2, 0)} and not any("\u2020" in t.get_text() for t in anchor.texts)
    assert "\u2020: width ratio above 0.1" in fig._suptitle.get_text()
    assert "\u2020" not in similarity_heatmaps(ds, "linear_cka")._suptitle.get_text()


@pytest.mark.parametrize("uncertain", [False, True])
def test_many_long_model_names_still_draw(tmp_path, uncertain):
    models = [f"a-rather-long-model-name-{i:02d}" for i in range(14)]
    ds = _similarity(models)
    if uncertain:
        ds = _uncertain(ds, [i % 5 == 0 for i in range(14)])
    fig = similarity_heatmaps(ds, "linear_cka")
    assert not any(ax.texts for ax in fig.axes)  # too many models to annotate, intervals included
    assert "interval" not in fig._suptitle.get_text()
    assert len([p for p in fig.axes[0].patches if p.get_hatch()]) == (14 * 14 - 11 * 11 if uncertain else 0)
    path = save_figure(fig, tmp_path / "big.png")
    assert path.stat().st_size > 10_000


def _full_similarity(models, metrics=("linear_cka", "gfre", "optimal_transport")):
    rng = np.random.default_rng(0)
    n = len(models)
    values = rng.uniform(0.2, 0.9, size=(len(metrics), 2, n, n))
    for i in range(n):
        values[:, :, i, i] = 1.0
    values = (values + values.transpose(0, 1, 3, 2)) / 2
    if "optimal_transport" in metrics:
        values[list(metrics).index("optimal_transport"), 0] = np.nan  # not defined in the raw spaces
    return xr.Dataset(
        {
            "similarity": (("metric", "space", "model_a", "model_b"), values),
            "intrinsic_dimension": (("space", "model"), rng.uniform(2, 9, size=(2, n))),
        },
        coords={"metric": list(metrics), "space": ["raw", "anchor"], "model_a": models, "model_b": models,
                "model": models},
        attrs={"n_atoms": 321, "n_anchors": 12, "directed_metrics": ["gfre"]},
    )  # fmt: skip


def _non_blank(path):
    image = matplotlib.image.imread(path)
    return path.stat().st_size > 5_000 and image.std() > 0.02


def test_model_colours_are_fixed_by_order_and_colour_blind_safe_first():
    models = [f"model-{i}" for i in range(20)]
    colours = model_colours(models)
    assert list(colours) == models and colours["model-0"] == "#0072B2"  # Okabe-Ito blue first
    assert len(set(list(colours.values())[:17])) == 17  # distinct up to 17 models
    assert model_colours(models[:3]) == {m: colours[m] for m in models[:3]}  # same colour in every figure


def test_agreement_scatter_plots_every_pair_and_handles_missing_raw_values(tmp_path):
    ds = _full_similarity(["a", "b", "c"], metrics=("linear_cka", "gfre", "svcca", "optimal_transport"))
    ds["similarity"].loc[{"metric": "svcca", "space": "raw"}] = np.nan
    fig = _agreement(ds)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 3  # the 2-Wasserstein distance is left out: not scale-free
    cka, gfre, svcca = panels
    # symmetric metric: 3 unordered pairs; directed: 6 ordered pairs
    np.testing.assert_allclose(
        cka.collections[0].get_offsets(),
        [[ds.similarity.values[0, 0, i, j], ds.similarity.values[0, 1, i, j]] for i, j in [(0, 1), (0, 2), (1, 2)]],
    )
    assert len(gfre.collections[0].get_offsets()) == 6
    assert "not defined" in svcca.texts[0].get_text()
    # a store without intervals, chance levels or controls: points only, mean shift over every pair
    assert [len(ax.collections) for ax in (cka, gfre)] == [1, 1] and not cka.patches and not fig.legends
    shift = np.mean(
        [ds.similarity.values[0, 1, i, j] - ds.similarity.values[0, 0, i, j] for i, j in [(0, 1), (0, 2), (1, 2)]]
    )
    assert cka.get_title().endswith(f"mean shift anchor - raw: {shift:+.3g}")
    title = fig._suptitle.get_text()
    assert "321 atoms" in title and "3 models," in title
    assert "left out: 2-Wasserstein distance (not scale-free" in title and "interval" not in title
    assert _non_blank(save_figure(fig, tmp_path / "agreement.png", also=(".svg",)))
    assert (tmp_path / "agreement.svg").stat().st_size > 5_000


def _band(ax, gid):
    """The data-coordinate extent of the span patch ``gid`` along its spanning axis."""
    (patch,) = [p for p in ax.patches if p.get_gid() == gid]
    corners = patch.get_patch_transform().transform(patch.get_path().vertices)
    column = 0 if gid.startswith("raw") else 1
    return corners[:, column].min(), corners[:, column].max()


def test_agreement_scatter_intervals_chance_bands_and_pair_kinds(tmp_path):
    models = ["a", "b", "c", "element", "soap"]
    ds = _uncertain(_full_similarity(models), [False, False, False, True, True])
    fig = _agreement(ds)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["linear CKA", "GFRE (row predicts column)"]
    assert "2-Wasserstein distance" in fig._suptitle.get_text()
    kinds = {"MLIP - MLIP": [(0, 1), (0, 2), (1, 2)], "MLIP - control": [(i, j) for i in range(3) for j in (3, 4)],
             "control - control": [(3, 4)]}  # fmt: skip
    for ax, metric in zip(panels, ["linear_cka", "gfre"], strict=True):
        value = ds.sel(metric=metric)

        def drawn(members, directed=metric == "gfre"):  # directed metrics: both directions of each pair
            return sorted(members + [(j, i) for i, j in members]) if directed else sorted(members)

        pairs = drawn([p for members in kinds.values() for p in members])
        scatters = {c.get_label(): c for c in ax.collections if c.get_label() in kinds}
        assert set(scatters) == set(kinds)
        for kind, members in kinds.items():
            expected = [[value.similarity.values[s, i, j] for s in (0, 1)] for i, j in drawn(members)]
            np.testing.assert_allclose(scatters[kind].get_offsets(), expected)
        assert scatters["control - control"].get_facecolor().size == 0  # hollow
        # interval bars: raw interval horizontal at the anchor value, anchor interval vertical at the raw value
        (raw_bars,) = [c for c in ax.collections if c.get_gid() == "raw interval"]
        (anchor_bars,) = [c for c in ax.collections if c.get_gid() == "anchor interval"]
        assert len(raw_bars.get_segments()) == len(anchor_bars.get_segments()) == len(pairs)
        for segment, (i, j) in zip(raw_bars.get_segments(), pairs, strict=True):
            lo, hi = value.ci_low.values[0, i, j], value.ci_high.values[0, i, j]
            np.testing.assert_allclose(
                segment, [[lo, value.similarity.values[1, i, j]], [hi, value.similarity.values[1, i, j]]]
            )
        for segment, (i, j) in zip(anchor_bars.get_segments(), pairs, strict=True):
            lo, hi = value.ci_low.values[1, i, j], value.ci_high.values[1, i, j]
            np.testing.assert_allclose(
                segment, [[value.similarity.values[0, i, j], lo], [value.similarity.values[0, i, j], hi]]
            )
        # chance bands: lowest mean - 2 sd to highest mean + 2 sd over the MLIP pairs, per space
        for s, space in enumerate(("raw", "anchor")):
            mean = np.array([value.chance.values[s, i, j] for i, j in drawn(kinds["MLIP - MLIP"])])
            sd = np.array([value.chance_sd.values[s, i, j] for i, j in drawn(kinds["MLIP - MLIP"])])
            np.testing.assert_allclose(_band(ax, f"{space} chance"), [(mean - 2 * sd).min(), (mean + 2 * sd).max()])
        mlips = drawn(kinds["MLIP - MLIP"])
        shift = np.mean([value.similarity.values[1, i, j] - value.similarity.values[0, i, j] for i, j in mlips])
        assert ax.get_title().endswith(f"mean shift anchor - raw, MLIP pairs: {shift:+.3g}")
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()][:3] == list(kinds)
    title = fig._suptitle.get_text()
    assert "3 models and 2 controls" in title
    assert "50 structure-bootstrap resamples" in title and "3 structure permutations" in title
    assert _non_blank(save_figure(fig, tmp_path / "agreement.png"))


def test_agreement_scatter_sets_each_space_against_the_one_before_it(tmp_path):
    """With the unit space: one row of panels per step, anchor vs unit first (what the anchors add), then unit vs
    raw (what normalising does), each point a pair's value in the two spaces."""
    two = _full_similarity(["a", "b", "c"], metrics=("linear_cka", "gfre"))
    unit = two.sel(space="raw").assign_coords(space="unit") * 0.5 + 0.4
    ds = xr.concat([two.sel(space=["raw"]), unit.expand_dims("space"), two.sel(space=["anchor"])], dim="space")
    ds.attrs = two.attrs
    assert space_steps(ds) == [("unit", "anchor"), ("raw", "unit")]
    fig = _agreement(ds)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4
    value = ds["similarity"].sel(metric="linear_cka")
    for ax, (x, y) in zip(panels[::2], space_steps(ds), strict=True):
        assert (ax.get_xlabel(), ax.get_ylabel()) == (LABELS[x], LABELS[y])
        expected = [
            [value.sel(space=x).values[i, j], value.sel(space=y).values[i, j]] for i, j in [(0, 1), (0, 2), (1, 2)]
        ]
        np.testing.assert_allclose(ax.collections[0].get_offsets(), expected)
        shift = np.mean([b - a for a, b in expected])
        assert ax.get_title().endswith(f"mean shift {y} - {x}: {shift:+.3g}")
    assert "anchor vs unit, then unit vs raw" in fig._suptitle.get_text()
    assert _non_blank(save_figure(fig, tmp_path / "agreement.png"))


def test_agreement_scatter_with_only_unscaled_metrics_says_so():
    fig = _agreement(_full_similarity(["a", "b"], metrics=("optimal_transport",)))
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == ["no scale-free metric"]
    assert "left out: 2-Wasserstein distance" in fig._suptitle.get_text()
    # the label follows the store's transport cost (similarity.ot_cost)
    ds = _full_similarity(["a", "b"], metrics=("optimal_transport",))
    ds.attrs["ot_cost"] = "euclidean"
    assert "left out: 1-Wasserstein distance" in _agreement(ds)._suptitle.get_text()
    assert similarity_heatmaps(ds, "optimal_transport")._suptitle.get_text().startswith("1-Wasserstein distance (")


def test_shared_space_maps_draw_the_maps_they_are_given(tmp_path):
    from platonic.atom_maps import joint_maps

    rng = np.random.default_rng(2)
    z = rng.choice([1, 8, 26, 57, 79], size=60)
    coordinates = {
        "m1": rng.normal(size=(60, 7)),
        "a-very-long-model-name-with-many-parts-v2": rng.normal(size=(60, 7)),
    }
    maps = joint_maps(coordinates, ("pca",))
    fig = shared_space_maps(maps, z)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2
    for ax, model in zip(panels, coordinates, strict=True):
        np.testing.assert_array_equal(ax.collections[0].get_offsets(), maps.sel(reduction="pca", model=model).values)
        np.testing.assert_array_equal(ax.collections[0].get_array(), periodic_group(z))
        assert ax.get_xlabel() == "PCA 1"
    # one shared frame: every panel spans all models' points plus 4 % of their range
    every = maps.values.reshape(-1, 2)
    low, high = every.min(axis=0), every.max(axis=0)
    np.testing.assert_allclose(
        panels[0].get_xlim(), [low[0] - 0.04 * (high[0] - low[0]), high[0] + 0.04 * (high[0] - low[0])]
    )
    assert panels[0].get_xlim() == panels[1].get_xlim()
    assert "(7 anchors), PCA fitted on all models jointly; the same 60 atoms" in fig._suptitle.get_text()
    assert "UMAP: install umap-learn" in fig._suptitle.get_text()
    assert _non_blank(save_figure(fig, tmp_path / "map.png"))


def test_shared_space_maps_one_row_of_panels_per_method(tmp_path):
    rng = np.random.default_rng(3)
    dims = ("reduction", "model", "atom", "axis")
    coords = {"reduction": ["pca", "umap"], "model": ["m1", "m2"]}
    maps = xr.DataArray(rng.normal(size=(2, 2, 30, 2)), dims=dims, coords=coords, attrs={"n_anchors": 4})
    fig = shared_space_maps(maps, rng.choice([1, 8], size=30))
    assert [ax.get_xlabel() for ax in fig.axes if ax.get_title()] == ["PCA 1", "PCA 1", "UMAP 1", "UMAP 1"]
    np.testing.assert_array_equal(fig.axes[3].collections[0].get_offsets(), maps.values[1, 1])
    assert "install umap-learn" not in fig._suptitle.get_text()
    assert _non_blank(save_figure(fig, tmp_path / "umap.png"))


def test_periodic_trends_panels_draw_the_trend_matrices(tmp_path):
    from platonic.elements import trend_matrices

    rng = np.random.default_rng(4)
    elements = np.array([26, 1, 8, 11])  # Fe, H, O, Na
    trends = trend_matrices(elements, {"m1": rng.normal(size=(4, 6)), "m2": rng.normal(size=(4, 6))})
    fig = periodic_trends(trends, counts=np.array([5, 6, 7, 8]))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["H", "Na", "Fe", "O"]  # group 1, 1, 8, 16
    for ax, model in zip(panels, ["m1", "m2"], strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), trends["cosine"].sel(model=model).values)
    assert panels[0].get_title() == "m1"  # the reference: no r with itself
    assert panels[1].get_title() == f"m2\nr = {float(trends['r'].sel(model='m2')):.2f} vs m1"
    assert "4 elements, 26 atoms" in fig._suptitle.get_text()
    assert _non_blank(save_figure(fig, tmp_path / "periodic.png"))


def test_model_statistics_bars_are_the_intrinsic_dimensions(tmp_path):
    ds = _full_similarity(["a", "b"])
    rng = np.random.default_rng(5)
    norms = {"a": rng.uniform(1, 2, 50), "b": rng.uniform(100, 200, 50)}
    fig = model_statistics(ds["intrinsic_dimension"], norms)
    bars, boxes = fig.axes[:2]
    heights = [p.get_height() for p in bars.patches]
    np.testing.assert_allclose(heights, ds["intrinsic_dimension"].values.ravel())
    assert boxes.get_yscale() == "log"  # medians 100x apart
    assert _non_blank(save_figure(fig, tmp_path / "stats.png"))


@pytest.mark.parametrize("n_models", [2, 12])
def test_model_tree_uses_the_metric_distances(tmp_path, n_models):
    models = [f"long-model-name-number-{i:02d}" for i in range(n_models)]
    ds = _full_similarity(models)
    fig = model_tree(linkage_and_mds(ds, "linear_cka"))
    maps = [ax for ax in fig.axes if "MDS" in ax.get_title()]
    assert len(maps) == 2
    for ax, space in zip(maps, ["raw", "anchor"], strict=True):
        xy = np.array([c.get_offsets()[0] for c in ax.collections])
        expected = classical_mds(model_distances(ds, "linear_cka", space))
        np.testing.assert_allclose(xy, expected, atol=1e-12)
    assert not any("control" in t.get_text() for ax in fig.axes for t in ax.get_yticklabels())
    assert _non_blank(save_figure(fig, tmp_path / "tree.png"))
    # a metric not defined in the raw spaces: that row says so instead of failing
    fig = model_tree(linkage_and_mds(ds, "optimal_transport"))
    assert any("not defined in the raw latent spaces" in t.get_text() for ax in fig.axes for t in ax.texts)


def _periodic_study(seed):
    """Atoms of 30 structures (2-6 atoms each) with a rare element (Au, in three structures), some atoms not
    valid, and three models whose features share each element's direction plus noise."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 7, 30)
    structure = np.repeat(np.arange(30), counts)
    z = rng.choice([1, 8, 26, 57, 3], size=len(structure))
    z[np.isin(structure, [4, 17, 25]) & (np.arange(len(z)) % 2 == 0)] = 79
    valid = rng.random(len(z)) > 0.1
    directions = {e: rng.normal(size=6) for e in np.unique(z)}
    base = np.stack([directions[e] for e in z])
    features = {m: base @ rng.normal(size=(6, 5)) + 0.8 * rng.normal(size=(len(z), 5)) for m in ("m1", "m2", "m3")}
    ids = np.array([f"syn-{i:02d}" for i in structure], dtype=object)
    return features, z, ids, structure, valid


def test_periodic_trend_bootstrap_equals_resampling_the_atoms():
    from platonic.compare.bootstrap import structure_counts
    from platonic.elements import (
        cosine_matrix,
        drawn_element_means,
        element_pairs,
        pair_sums,
        periodic_trend_bootstrap,
        trend_correlation,
    )

    features, z, ids, structure, valid = _periodic_study(seed=7)
    replicates, seed, min_atoms = 60, 5, 3
    elements, means, counts, intervals = periodic_trend_bootstrap(
        features, z, ids, valid, min_atoms=min_atoms, n_replicates=replicates, seed=seed
    )
    # the point estimates: the mean over the valid atoms of each element with at least min_atoms of them
    present, atoms = np.unique(z[valid], return_counts=True)
    np.testing.assert_array_equal(elements, present[atoms >= min_atoms])
    np.testing.assert_array_equal(counts, atoms[atoms >= min_atoms])
    for model, x in features.items():
        direct = [x[valid & (z == e)].mean(axis=0) for e in elements]
        np.testing.assert_allclose(means[model], direct, rtol=1e-12)
    # the fast path's pieces on the bootstrap's draws: per-(element, structure) sums weighted by the counts
    shown = valid & np.isin(z, elements)
    drawable = np.unique(structure[valid])  # every structure with a valid atom, in the order of its id
    draws = structure_counts(len(drawable), replicates, seed)
    _, pair_element, pair_structure, atom_pair = element_pairs(z, np.searchsorted(drawable, structure), shown)
    fast = {}
    for model, x in features.items():
        sums, pair_counts = pair_sums(x, atom_pair, len(pair_element), chunk=17)
        fast[model], drawn_counts = drawn_element_means(
            pair_element, pair_structure, sums, pair_counts, draws, len(elements)
        )
    fast_r = {
        m: trend_correlation(cosine_matrix(fast["m1"]), cosine_matrix(fast[m]), drawn_counts > 0) for m in ("m2", "m3")
    }
    # naive: every replicate's atoms built explicitly (a structure drawn twice: its atoms twice) and read again
    atoms_of = [np.flatnonzero(shown & (structure == s)) for s in drawable]
    naive = {m: [] for m in ("m2", "m3")}
    vanished = 0
    for b, drawn in enumerate(draws):
        atoms = np.concatenate([atoms_of[s] for s in range(len(drawable)) for _ in range(drawn[s])])
        kept = drawn_counts[b] > 0
        present, n = np.unique(z[atoms], return_counts=True)
        np.testing.assert_array_equal(elements[kept], present)
        np.testing.assert_array_equal(drawn_counts[b][kept], n)
        matrices = {}
        for model, x in features.items():
            resampled = np.stack([x[atoms][z[atoms] == e].mean(axis=0) for e in present])
            assert np.isnan(fast[model][b][~kept]).all()
            np.testing.assert_allclose(fast[model][b][kept], resampled, rtol=1e-10)
            unit = resampled / np.linalg.norm(resampled, axis=1, keepdims=True)
            matrices[model] = unit @ unit.T
        vanished += not kept.all()
        off = ~np.eye(kept.sum(), dtype=bool)
        for model in naive:
            naive[model].append(np.corrcoef(matrices["m1"][off], matrices[model][off])[0, 1])
            assert fast_r[model][b] == pytest.approx(naive[model][-1], rel=1e-10)
    assert 0 < vanished < replicates  # the rare element is missing from some replicates, not from all
    for model, r in naive.items():
        np.testing.assert_allclose(intervals[model], np.percentile(r, [2.5, 97.5]), rtol=1e-10)
    # the same seed draws the same replicates, another seed others; no replicates: no interval
    again = periodic_trend_bootstrap(features, z, ids, valid, min_atoms=min_atoms, n_replicates=replicates, seed=seed)
    assert again[3] == intervals
    assert periodic_trend_bootstrap(features, z, ids, valid, min_atoms, replicates, seed + 1)[3] != intervals
    without = periodic_trend_bootstrap(features, z, ids, valid, min_atoms=min_atoms, n_replicates=0, seed=seed)
    assert all(np.isnan(v).all() for v in without[3].values()) and list(without[3]) == ["m2", "m3"]
    np.testing.assert_array_equal(without[1]["m2"], means["m2"])  # the means do not depend on the bootstrap


def test_periodic_trends_titles_give_the_bootstrap_interval():
    from platonic.elements import trend_matrices

    rng = np.random.default_rng(4)
    elements = np.array([26, 1, 8, 11])
    means = {"m1": rng.normal(size=(4, 6)), "m2": rng.normal(size=(4, 6)), "m3": rng.normal(size=(4, 6))}
    trends = trend_matrices(elements, means)
    fig = periodic_trends(trends, intervals={"m2": (0.1234, 0.5678), "m3": (np.nan, np.nan)})
    panels = [ax for ax in fig.axes if ax.get_title()]
    r = float(trends["r"].sel(model="m2"))
    assert f"r = {r:.2f} [0.12, 0.57] vs m1" in panels[1].get_title()
    assert "[" not in panels[2].get_title() and "r = " in panels[2].get_title()  # no interval: r alone
    assert "95 % interval" in fig._suptitle.get_text()
    assert "interval" not in periodic_trends(trends)._suptitle.get_text()


def test_periodic_trends_stage_draws_the_structure_bootstrap(tmp_path, monkeypatch):
    from analysis_stores import write_study

    from platonic import figures
    from platonic.cli import main
    from platonic.elements import periodic_trend_bootstrap
    from platonic.store import open_store, write_store

    features, z, _, structure, _ = _periodic_study(seed=3)
    paths = write_study(tmp_path, features, z, structure, {}, np.arange(5))
    similarity = write_store(xr.Dataset(coords={"model_a": list(features)}), tmp_path / "similarity.zarr")
    drawn = []
    save = figures.save_figure
    monkeypatch.setattr(
        figures, "save_figure", lambda fig, *args, **kwargs: drawn.append(fig) or save(fig, *args, **kwargs)
    )
    settings = '{"bootstrap": 30, "seed": 4, "trend_min_atoms": 3}'
    args = ["overview-figure", "periodic_trends", str(similarity), "--output", str(tmp_path / "trends.png")]
    args += ["--embeddings", *map(str, paths["embeddings"]), "--anchors", str(paths["anchors"]), "--settings", settings]
    assert main(args) == 0
    stores = [open_store(p) for p in paths["embeddings"]]
    expected = periodic_trend_bootstrap(
        {s.attrs["model"]: s["embedding"].values for s in stores}, z, stores[0]["structure_id"].values,
        min_atoms=3, n_replicates=30, seed=4,
    )[3]  # fmt: skip
    titles = [ax.get_title() for ax in drawn[0].axes if ax.get_title()]
    for title, model in zip(titles[1:], ["m2", "m3"], strict=True):
        assert "[{:.2f}, {:.2f}] vs m1".format(*expected[model]) in title
    assert _non_blank(tmp_path / "trends.png")


def test_model_tree_marks_the_controls(tmp_path):
    models = ["a", "b", "element", "c", "soap"]
    control = [False, False, True, False, True]
    ds = _uncertain(_full_similarity(models), control)
    fig = model_tree(linkage_and_mds(ds, "linear_cka"))
    colours = model_colours(models)
    trees = [ax for ax in fig.axes if "dendrogram" in ax.get_title()]
    maps = [ax for ax in fig.axes if "MDS" in ax.get_title()]
    assert len(trees) == len(maps) == 2
    labelled = {m + (" (control)" if c else ""): (m, c) for m, c in zip(models, control, strict=True)}
    for tree in trees:
        ticks = tree.get_yticklabels()
        assert {t.get_text() for t in ticks} == set(labelled)
        for tick in ticks:
            model, is_control = labelled[tick.get_text()]
            assert tick.get_color() == colours[model]  # the model's colour, as in every figure
            assert tick.get_fontstyle() == ("italic" if is_control else "normal")
    for ax, space in zip(maps, ["raw", "anchor"], strict=True):
        np.testing.assert_allclose(
            [c.get_offsets()[0] for c in ax.collections], classical_mds(model_distances(ds, "linear_cka", space))
        )
        hollow = [c.get_facecolor().size == 0 for c in ax.collections]
        assert hollow == control
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "a", "b", "element (control)", "c", "soap (control)"
        ]  # fmt: skip
    assert "controls" in fig._suptitle.get_text()
    assert _non_blank(save_figure(fig, tmp_path / "tree.png"))


def test_a_store_with_bootstrap_and_permutations_off_draws_as_without_them():
    """bootstrap 0, permutations 0: the variables exist but are NaN; every figure draws as for an older store."""
    models = ["a", "b", "c"]
    old = _full_similarity(models)
    new = _uncertain(old, [False, False, False])
    for name in ("standard_error", "ci_low", "ci_high", "chance", "chance_sd"):
        new[name][:] = np.nan
    new.attrs.update(bootstrap=0, permutations=0)
    for figure in (
        lambda ds: similarity_heatmaps(ds, "gfre"),
        _agreement,
        lambda ds: model_tree(linkage_and_mds(ds, "gfre")),
    ):
        drawn = [figure(ds) for ds in (old, new)]
        assert drawn[0]._suptitle.get_text() == drawn[1]._suptitle.get_text()
        for before, after in zip(drawn[0].axes, drawn[1].axes, strict=True):
            assert [t.get_text() for t in before.texts] == [t.get_text() for t in after.texts]
            assert [t.get_text() for t in before.get_yticklabels()] == [t.get_text() for t in after.get_yticklabels()]
            assert len(before.collections) == len(after.collections) and len(before.patches) == len(after.patches)
            assert before.get_title() == after.get_title()


def test_a_chance_band_far_from_every_pair_is_named_not_drawn_into_the_axes():
    ds = _uncertain(_full_similarity(["a", "b", "c"], metrics=("lfre",)), [False, False, False])
    ds["chance"] = ds["chance"] + 50.0  # LFRE of unrelated neighbourhoods: a local ridge far off the scale
    fig = _agreement(ds)
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert ax.get_xlim()[1] < 2 and ax.get_ylim()[1] < 2  # the pairs (0.2-0.9) keep the axes
    (note,) = [t for t in ax.texts if t.get_gid() == "chance off the axes"]
    low = float(
        (ds["chance"] - 2 * ds["chance_sd"]).sel(metric="lfre", space="raw").values[~np.eye(3, dtype=bool)].min()
    )
    assert f"raw chance {low:.3g} to" in note.get_text() and "anchor chance" in note.get_text()


def test_layer_depth_figure_draws_the_depth_curves(tmp_path):
    from platonic.figures import layer_depth_figure

    layers = ("layer", ["a", "a", "b", "b", "b"])
    depth = ("layer", [0.0, 1.0, 0.0, 0.5, 1.0])
    curves = xr.Dataset(
        {name: (("space", "layer"), np.arange(10.0).reshape(2, 5) / 10 + shift)
         for name, shift in (("to_last", 0.0), ("best_of_others", 0.01), ("ci_low", -0.05), ("ci_high", 0.05))},
        coords={"space": ["raw", "anchor"], "model": layers, "depth": depth},
        attrs={"metric": "linear_cka", "n_atoms": 12},
    )  # fmt: skip
    fig = layer_depth_figure(curves)
    raw, anchor = fig.axes[:2]
    assert (raw.get_title(), anchor.get_title()) == (LABELS["raw"], LABELS["anchor"])
    # per model: its curve to its last layer (solid), then the others' best matches (dashed)
    solid_a, dashed_a, solid_b, dashed_b = anchor.lines
    np.testing.assert_allclose(solid_a.get_xydata(), [[0.0, 0.5], [1.0, 0.6]])
    np.testing.assert_allclose(dashed_b.get_xydata(), [[0.0, 0.71], [0.5, 0.81], [1.0, 0.91]])
    assert solid_b.get_linestyle() == "-" and dashed_a.get_linestyle() == "--"
    assert len(anchor.collections) == 2  # one interval band per model
    assert fig._suptitle.get_text() == "linear CKA by depth (12 atoms)"
    assert _non_blank(save_figure(fig, tmp_path / "depth.png"))
