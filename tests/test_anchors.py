import numpy as np
import pytest

from platonic.anchors import anchor_dataset, common_valid, direct_sampling, select_anchors


def test_random_anchors_are_seeded_sorted_and_respect_candidates():
    features = np.random.default_rng(0).normal(size=(200, 5))
    candidates = np.arange(200) % 3 == 0
    first = select_anchors(features, 20, "random", seed=4, candidates=candidates)
    np.testing.assert_array_equal(first, select_anchors(features, 20, "random", seed=4, candidates=candidates))
    assert len(set(first)) == 20
    assert np.all(np.diff(first) > 0)
    assert candidates[first].all()
    assert not np.array_equal(first, select_anchors(features, 20, "random", seed=5, candidates=candidates))


def test_farthest_point_picks_one_atom_per_separated_cluster():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], dtype=float)
    labels = np.repeat(np.arange(4), 50)
    features = centres[labels] + rng.normal(scale=0.5, size=(200, 2))
    chosen = select_anchors(features, 4, "farthest-point", seed=3)
    assert sorted(labels[chosen]) == [0, 1, 2, 3]


def test_common_valid_is_the_intersection():
    a = np.array([1, 1, 0, 1], bool)
    b = np.array([1, 0, 1, 1], bool)
    np.testing.assert_array_equal(common_valid([a, b]), [1, 0, 0, 1])
    with pytest.raises(ValueError, match="disagree on the number of atoms"):
        common_valid([a, b[:3]])


def test_bad_requests_raise():
    features = np.zeros((5, 2))
    with pytest.raises(ValueError, match="cannot pick 6 anchors from 5"):
        select_anchors(features, 6, "random", 0)
    with pytest.raises(ValueError, match="unknown anchor method"):
        select_anchors(features, 2, "magic", 0)
    with pytest.raises(ValueError, match="must be positive"):
        select_anchors(features, 0, "random", 0)


def test_anchor_store_layout():
    reference_valid = np.array([1, 1, 0, 1], bool)
    ds = anchor_dataset(np.array([1, 3]), reference_valid, np.array([8, 1, 1, 26]), np.array(list("abcd")), seed=0)
    np.testing.assert_array_equal(ds["anchor_Z"].values, [1, 26])
    np.testing.assert_array_equal(ds["anchor_structure_id"].values, ["b", "d"])
    np.testing.assert_array_equal(ds["reference_valid"].values, reference_valid)
    np.testing.assert_array_equal(ds["compared"].values, np.ones(4, bool))  # no model's exclusions in it
    assert "common_valid" not in ds
    assert len(ds.attrs["anchor_set_hash"]) == 64
    assert ds.attrs["n_reference_valid"] == 3 and ds.attrs["n_compared"] == 4


def write_stores(root, valid: dict[str, np.ndarray], seed: int = 0) -> dict:
    """A structure store of four structures (12 atoms; orbits of 1, 2 and 3 copies) and one embedding store per
    model of ``valid`` ({model: valid (12,)}), its invalid atoms NaN rows; returns the paths."""
    import xarray as xr

    from platonic.store import write_store

    structure_index = np.repeat(np.arange(4), 3)
    orbit = np.array([0, 0, 2, 3, 4, 5, 6, 6, 6, 9, 10, 10])
    multiplicity = np.bincount(orbit, minlength=12)[orbit]
    z = np.array([11, 11, 17, 3, 9, 9, 12, 12, 12, 8, 1, 1])
    ids = np.array([f"s{i}" for i in structure_index], dtype=object)
    coords = {"atom": np.arange(12), "structure_id": ("atom", ids), "site": ("atom", np.tile(np.arange(3), 4)),
              "Z": ("atom", z)}  # fmt: skip
    structures = xr.Dataset(
        {"structure_index": ("atom", structure_index), "orbit": ("atom", orbit),
         "multiplicity": ("atom", multiplicity)},
        coords=coords,
        attrs={"kind": "structures", "structure_set_hash": "h", "symprec": 0.001},
    )  # fmt: skip
    paths = {"structures": str(write_store(structures, root / "structures.zarr")), "embeddings": {}}
    rng = np.random.default_rng(seed)
    for model, mask in valid.items():
        features = rng.normal(size=(12, 4))
        features[~mask] = np.nan
        ds = xr.Dataset(
            {"embedding": (("atom", "feature"), features.astype(np.float32)), "valid": ("atom", mask)},
            coords=coords,
            attrs={"kind": "embedding", "model": model, "structure_set_hash": "h"},
        )
        paths["embeddings"][model] = str(write_store(ds, root / f"embeddings/{model}.zarr"))
    return paths


EVERYWHERE = np.ones(12, bool)
NOT_LAST_STRUCTURE = np.arange(12) < 9  # the fourth structure (atoms 9-11) left out


def anchor_settings(**values):
    from platonic.settings import AnchorSettings

    return AnchorSettings.from_mapping({"reference_model": "ref", "n": 3, "method": "random", "atoms": "all", **values})


@pytest.mark.parametrize("atoms", ["unique", "all"])
def test_the_anchor_store_depends_on_the_reference_model_alone(tmp_path, atoms):
    from platonic.stages.align import anchors
    from platonic.store import open_store

    paths = write_stores(tmp_path, {"ref": NOT_LAST_STRUCTURE, "other": EVERYWHERE, "partial": ~NOT_LAST_STRUCTURE})
    stores = paths["embeddings"]
    settings = anchor_settings(atoms=atoms, n=4)
    anchors(str(tmp_path / "alone.zarr"), structures=paths["structures"], embedding=stores["ref"], settings=settings)
    others = tuple(stores.values())
    anchors(
        str(tmp_path / "with.zarr"),
        structures=paths["structures"],
        embedding=stores["ref"],
        settings=settings,
        embeddings=others,
    )
    alone, with_others = open_store(tmp_path / "alone.zarr").load(), open_store(tmp_path / "with.zarr").load()
    assert alone.identical(with_others)
    unique = np.array([0, 0, 2, 3, 4, 5, 6, 6, 6, 9, 10, 10]) == np.arange(12)
    np.testing.assert_array_equal(alone["compared"].values, unique if atoms == "unique" else EVERYWHERE)
    np.testing.assert_array_equal(alone["reference_valid"].values, NOT_LAST_STRUCTURE)
    np.testing.assert_array_equal(alone["multiplicity"].values, [2, 2, 1, 1, 1, 1, 3, 3, 3, 1, 2, 2])
    assert set(alone["anchor_atom"].values) <= set(np.flatnonzero(alone["compared"].values & NOT_LAST_STRUCTURE))
    assert alone.attrs["reference_model"] == "ref" and alone.attrs["candidates"] == "reference"
    assert alone.attrs["n_reference_valid"] == 9 and alone.attrs["n_compared"] == alone["compared"].values.sum()


def test_common_candidates_keep_the_anchors_on_atoms_every_model_embedded(tmp_path):
    from platonic.stages.align import anchors
    from platonic.store import open_store

    partial = np.arange(12) >= 3  # the first structure left out
    paths = write_stores(tmp_path, {"ref": NOT_LAST_STRUCTURE, "other": partial})
    stores = paths["embeddings"]
    with pytest.raises(ValueError, match="give every model's embedding store"):
        anchors(
            str(tmp_path / "a.zarr"),
            structures=paths["structures"],
            embedding=stores["ref"],
            settings=anchor_settings(candidates="common"),
        )
    for seed in range(5):
        settings = anchor_settings(candidates="common", n=6, seed=seed)
        anchors(str(tmp_path / f"{seed}.zarr"), structures=paths["structures"], embedding=stores["ref"],
                settings=settings, embeddings=tuple(stores.values()))  # fmt: skip
        ds = open_store(tmp_path / f"{seed}.zarr").load()
        np.testing.assert_array_equal(ds["anchor_atom"].values, np.arange(3, 9))  # the only six candidates
        np.testing.assert_array_equal(ds["compared"].values, EVERYWHERE)  # still no model's exclusions
        assert ds.attrs["candidates"] == "common" and ds.attrs["candidate_models"] == ["ref", "other"]
    # atoms 3..8: the ref model misses the last structure (9..11), the other the first (0..2)
    too_many = (
        r"^anchors\.n is 7 but only 6 atoms can be anchors: of the 12 compared atoms \(anchors\.atoms: all\),"
        r" those every model embedded \(anchors\.candidates: common\); set anchors\.n to at most 6$"
    )
    with pytest.raises(ValueError, match=too_many):
        anchors(str(tmp_path / "7.zarr"), structures=paths["structures"], embedding=stores["ref"],
                settings=anchor_settings(candidates="common", n=7), embeddings=tuple(stores.values()))  # fmt: skip
    assert not (tmp_path / "7.zarr").exists()


def test_too_many_anchors_fail_naming_the_key_and_both_counts(tmp_path):
    """One atom per orbit: 8 of the 12 (orbits of atoms 0-1, 6-8 and 10-11); the reference model embedded 6 of them
    (the fourth structure, atoms 9-11, left out)."""
    from platonic.stages.align import anchors

    paths = write_stores(tmp_path, {"ref": NOT_LAST_STRUCTURE})
    message = (r"^anchors\.n is 7 but only 6 atoms can be anchors: of the 8 compared atoms \(anchors\.atoms: unique\),"
               r" those ref embedded \(anchors\.candidates: reference\); set anchors\.n to at most 6$")  # fmt: skip
    for method in ("random", "direct"):
        with pytest.raises(ValueError, match=message):
            anchors(str(tmp_path / "a.zarr"), structures=paths["structures"], embedding=paths["embeddings"]["ref"],
                    settings=anchor_settings(atoms="unique", n=7, method=method))  # fmt: skip
    anchors(str(tmp_path / "a.zarr"), structures=paths["structures"], embedding=paths["embeddings"]["ref"],
            settings=anchor_settings(atoms="unique", n=6))  # fmt: skip
    assert (tmp_path / "a.zarr").exists()


def test_the_reference_store_must_be_the_reference_model(tmp_path):
    from platonic.stages.align import anchors

    paths = write_stores(tmp_path, {"ref": EVERYWHERE, "other": EVERYWHERE})
    with pytest.raises(ValueError, match="embedding store of 'other', not of the reference model 'ref'"):
        anchors(
            str(tmp_path / "a.zarr"),
            structures=paths["structures"],
            embedding=paths["embeddings"]["other"],
            settings=anchor_settings(),
        )


def test_projecting_a_model_that_missed_an_anchor_fails_naming_the_atoms(tmp_path):
    from platonic.stages.align import anchors, project
    from platonic.store import open_store, write_store

    paths = write_stores(tmp_path, {"ref": EVERYWHERE, "partial": NOT_LAST_STRUCTURE})
    stores = paths["embeddings"]
    a = str(tmp_path / "anchors.zarr")
    anchors(
        a, structures=paths["structures"], embedding=stores["ref"], settings=anchor_settings(n=12)
    )  # every atom an anchor
    project(stores["ref"], a, str(tmp_path / "ref.zarr"))
    out = tmp_path / "partial.zarr"
    with pytest.raises(ValueError) as caught:
        project(stores["partial"], a, str(out))
    message = str(caught.value)
    assert message.startswith("partial did not embed 3 of the 12 anchor atoms, chosen on ref: ")
    assert "atom 9 (s3, O), atom 10 (s3, H), atom 11 (s3, H)." in message
    assert "atom 8 " not in message
    assert "choose another anchors.reference_model" in message.lower() and "anchors.candidates: common" in message
    assert not out.exists()
    # a non-finite row marked valid is no embedding either
    store = open_store(stores["ref"]).load()
    features = store["embedding"].values.copy()
    features[4, 1] = np.inf
    broken = store.assign(embedding=(("atom", "feature"), features)).assign_attrs(model="broken")
    write_store(broken, tmp_path / "broken-embedding.zarr")
    expected = r"^broken did not embed 1 of the 12 anchor atoms, chosen on ref: atom 4 \(s1, F\)\. "
    with pytest.raises(ValueError, match=expected):
        project(str(tmp_path / "broken-embedding.zarr"), a, str(tmp_path / "broken.zarr"))
    assert not (tmp_path / "broken.zarr").exists()


def test_each_stage_compares_the_compared_atoms_its_models_embedded(tmp_path):
    from platonic.stages.common import atom_counts, compared_mask, valid_mask
    from platonic.store import open_store

    paths = write_stores(tmp_path, {"a": EVERYWHERE, "b": NOT_LAST_STRUCTURE, "c": np.arange(12) != 0})
    stores = {m: open_store(p) for m, p in paths["embeddings"].items()}
    unique = np.array([0, 0, 2, 3, 4, 5, 6, 6, 6, 9, 10, 10]) == np.arange(12)
    anchor_store = anchor_dataset(np.array([2]), EVERYWHERE, np.zeros(12, int), np.zeros(12, str), compared=unique)
    everyone = NOT_LAST_STRUCTURE & (np.arange(12) != 0)
    np.testing.assert_array_equal(valid_mask(stores), everyone)
    np.testing.assert_array_equal(compared_mask(anchor_store, stores), unique & everyone)
    pair = {m: stores[m] for m in ("a", "c")}
    np.testing.assert_array_equal(compared_mask(anchor_store, pair), unique & (np.arange(12) != 0))
    assert atom_counts(anchor_store, valid_mask(pair)) == {
        "n_excluded_atoms": 1,
        "n_valid_atoms": 11,
        "n_compared_atoms": 7,  # the representatives 2, 3, 4, 5, 6, 9, 10 (c did not embed atom 0)
        "n_symmetry_copies_left_out": 4,  # atoms 1, 7, 8, 11
    }
    with pytest.raises(ValueError, match="the model stores have 12 atoms, the anchor store 4"):
        compared_mask(anchor_dataset(np.array([0]), np.ones(4, bool), np.zeros(4, int), np.zeros(4, str)), stores)


def test_direct_picks_one_atom_from_each_separated_blob():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=50.0, size=(6, 10))
    labels = np.repeat(np.arange(6), 40)
    features = centres[labels] + rng.normal(scale=0.3, size=(240, 10))
    chosen = select_anchors(features, 6, "direct", 0)
    assert sorted(labels[chosen]) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(chosen, select_anchors(features, 6, "direct", 0))  # deterministic


def test_direct_equals_maml_direct_sampler():
    maml_direct = pytest.importorskip("maml.sampling.direct", reason="maml (reference DIRECT implementation) absent")
    from maml.sampling.clustering import BirchClustering
    from maml.sampling.stratified_sampling import SelectKFromClusters

    rng = np.random.default_rng(11)
    features = rng.normal(size=(1500, 24)) @ rng.normal(size=(24, 24)) + rng.normal(size=24)
    for n in (10, 40):
        sampler = maml_direct.DIRECTSampler(
            structure_encoder=None, clustering=BirchClustering(n=n), select_k_from_clusters=SelectKFromClusters(k=1)
        )
        expected = np.sort(sampler.fit_transform(features)["selected_indexes"])
        np.testing.assert_array_equal(direct_sampling(features, n), expected)
