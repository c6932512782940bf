"""Screening against a study: the library's numbers against brute force, and the stage end to end."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from platonic.analysis.screening import consensus_nearest, screen_environments


def cosine_distance(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1.0 - a @ b.T


def test_screening_equals_brute_force():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(20), 5)
    study = {"a": rng.normal(size=(100, 6)), "b": rng.normal(size=(100, 6))}
    queries = {m: rng.normal(size=(15, 6)) for m in study}
    queries["a"][0] = study["a"][7]  # a study environment seen again by model a
    queries["b"][0] = study["b"][7]
    queries["b"][4] = np.nan  # model b did not embed query 4
    k = 3
    result = screen_environments(queries, study, groups, k)
    for m, model in enumerate(study):
        d = cosine_distance(study[model], study[model])
        d[groups[:, None] == groups[None, :]] = np.inf  # the study's atoms: only other structures count
        own = np.sort(d, axis=1)[:, :k].mean(axis=1)
        np.testing.assert_allclose(result.study_atypicality[m], own, atol=1e-12)
        for q in range(15):
            if not np.isfinite(queries[model][q]).all():
                assert np.isnan(result.percentile[m, q]) and result.nearest[m, q] == -1
                continue
            dq = cosine_distance(queries[model][q : q + 1], study[model])[0]
            expected = np.sort(dq)[:k].mean()
            assert result.atypicality[m, q] == pytest.approx(expected, abs=1e-12)
            below, equal = np.sum(own < expected), np.sum(np.isclose(own, expected, atol=1e-12))
            assert result.percentile[m, q] == pytest.approx(100 * (below + equal / 2) / 100)
            assert result.nearest[m, q] == np.argmin(dq)
    assert result.nearest[0, 0] == 7 and result.nearest[1, 0] == 7
    np.testing.assert_allclose(result.consensus_percentile[[0, 1]], result.percentile[:, [0, 1]].mean(axis=0))
    assert np.isnan(result.consensus_percentile[4]) and np.isnan(result.disagreement[4])
    # disagreement: mean distance of each model's unit row to the mean unit row
    unit = {m: queries[m][1] / np.linalg.norm(queries[m][1]) for m in study}
    centre = (unit["a"] + unit["b"]) / 2
    assert result.disagreement[1] == pytest.approx(np.mean([np.linalg.norm(unit[m] - centre) for m in study]))

    # the consensus over model a alone (b a control): a's percentiles, and no disagreement with itself
    alone = screen_environments(queries, study, groups, k, consensus_models=["a"])
    np.testing.assert_array_equal(alone.consensus_percentile, result.percentile[0])
    assert np.isnan(alone.disagreement).all()

    index, distance = consensus_nearest(queries, study, 4, chunk=4)
    for q in range(15):
        if q == 4:
            assert (index[q] == -1).all() and np.isnan(distance[q]).all()
            continue
        mean = np.mean([cosine_distance(queries[m][q : q + 1], study[m])[0] for m in study], axis=0)
        np.testing.assert_array_equal(index[q], np.argsort(mean)[:4])
        np.testing.assert_allclose(distance[q], np.sort(mean)[:4], atol=1e-12)
    assert index[0, 0] == 7 and distance[0, 0] == pytest.approx(0.0, abs=1e-12)


def folder_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + file.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_screen_stage_reads_the_study_and_lists_rejected_structures(tmp_path):
    """Two models (chgnet-0.3.0, element); the screened set is three of the study's own structures plus a broken
    CIF: each screened atom's nearest study environment is itself (consensus distance 0 to 1e-6), the broken entry is
    listed with its reason, and the study's stores are left byte for byte as they were."""
    import csv

    from test_anchor_set import SAMPLE, small_study

    from platonic.settings import DatasetSettings, EmbedSettings, ModelSpec, ScreenSettings
    from platonic.stages.align import anchor_set, project
    from platonic.stages.embed import run as embed
    from platonic.stages.prepare import run as prepare
    from platonic.stages.screen import run as screen
    from platonic.store import open_store

    models = ["chgnet-0.3.0", "element"]
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    structures, stores, anchor_store = small_study(study_dir, models)
    exported = str(study_dir / "anchor_set.extxyz")
    anchor_set(exported, anchors=anchor_store, structures=structures)
    for model in models:
        project(stores[model], anchor_store, str(study_dir / f"project-{model}.zarr"))
    before = folder_digest(study_dir)

    with open(SAMPLE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    new = tmp_path / "new.csv"
    with open(new, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[2:5])
        writer.writerow({**rows[5], "material_id": "broken", "cif": "data_broken\n"})
    screened = str(tmp_path / "screen" / "structures.zarr")
    prepare(str(new), screened, DatasetSettings.from_mapping({"name": "s", "path": str(new)}))
    embeddings, projections = [], []
    for model in models:
        embeddings.append(str(tmp_path / "screen" / f"embedding-{model}.zarr"))
        embed(screened, embeddings[-1], model=model, spec=ModelSpec.from_mapping({}),
              settings=EmbedSettings.from_mapping({"threads": 1, "device": "cpu"}), progress=False)  # fmt: skip
        projections.append(str(tmp_path / "screen" / f"projection-{model}.zarr"))
        project(embeddings[-1], exported, projections[-1], anchor_embedding=stores[model])
    out = tmp_path / "screen" / "out"
    screen(str(out), structures=screened, embeddings=tuple(embeddings), projections=tuple(projections),
           study_projections=tuple(str(study_dir / f"project-{m}.zarr") for m in models),
           study_structures=structures, anchors=anchor_store,
           settings=ScreenSettings.from_mapping({"k": 2, "nearest": 2}))  # fmt: skip
    assert folder_digest(study_dir) == before

    result = open_store(out / "screen.zarr").load()
    study_structures = open_store(structures).load()
    compared = open_store(anchor_store)["compared"].values.astype(bool)
    ids = [str(s) for s in result["structure_id"].values]
    sites = result["site"].values
    orbit = open_store(screened)["orbit"].values
    for atom in np.flatnonzero(orbit == np.arange(len(orbit))):  # an orbit's representative is a study environment
        nearest = int(result["nearest"].values[atom, 0])
        assert compared[nearest]
        assert str(study_structures["structure_id"].values[nearest]) == ids[atom]
        assert int(study_structures["site"].values[nearest]) == sites[atom]
        # the element control's row is zero for an element no anchor has: cosine distance 1 to everything
        unseen = not result["coordinate"].sel(model="element").values[atom].any()
        assert result["nearest_distance"].values[atom, 0] == pytest.approx(0.5 if unseen else 0.0, abs=1e-6)
    assert set(ids) == {r["material_id"] for r in rows[2:5]}
    with open(out / "rejected.csv", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert [r["structure_id"] for r in rejected] == ["broken"] and "unreadable CIF" in rejected[0]["reason"]
    with open(out / "structures.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["rank"]) for r in table] == [1, 2, 3]
    means = [np.mean(result["atypicality_percentile"].values[[i for i, s in enumerate(ids) if s == r["structure_id"]]])
             for r in table]  # fmt: skip
    np.testing.assert_allclose([float(r["atypicality_percentile"]) for r in table], means)
    assert means == sorted(means, reverse=True)
    assert "<img alt='atypicality percentiles' src='data:image/png;base64," in (out / "screen.html").read_text()


def test_the_screen_page_links_the_map_only_when_it_exists(tmp_path):
    """The page links map.html (rule screen_map writes it beside the page) and says nothing of a map without one."""
    import matplotlib.pyplot as plt

    from platonic.settings import ScreenSettings
    from platonic.stages.screen import screen_page

    figure = tmp_path / "f.png"
    plt.imsave(figure, np.zeros((4, 4)))
    settings = ScreenSettings.from_mapping({"name": "val"})
    with_map = screen_page(settings, [], [], figure, ["a", "b"], "map.html")
    assert "<a href='map.html'>interactive map</a>" in with_map
    assert "interactive map" not in screen_page(settings, [], [], figure, ["a", "b"])
