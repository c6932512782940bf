import matplotlib.image
import numpy as np
import xarray as xr

from platonic.figures import save_figure, similarity_heatmaps


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
    assert "123 atoms" in fig._suptitle.get_text() and "k = 10" in fig._suptitle.get_text()
    path = save_figure(fig, tmp_path / "fig.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.std() > 0.05  # a real picture, not a blank canvas


def test_many_long_model_names_still_draw(tmp_path):
    models = [f"a-rather-long-model-name-{i:02d}" for i in range(14)]
    path = save_figure(similarity_heatmaps(_similarity(models), "linear_cka"), tmp_path / "big.png")
    assert path.stat().st_size > 10_000
