"""The anchor-set file: a model that embeds its structures alone lands on the study's own coordinates."""

from pathlib import Path

import numpy as np
import pytest

from platonic.settings import AnchorSettings, DatasetSettings, EmbedSettings, ModelSpec

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "mp20_sample" / "train.csv"


def small_study(tmp_path, models):
    """Structure store, embedding stores and an anchor store (12 random anchors on the first model) of 8 MP-20
    structures."""
    from platonic.stages.align import anchors
    from platonic.stages.embed import run as embed
    from platonic.stages.prepare import run as prepare

    structures = str(tmp_path / "structures.zarr")
    prepare(str(SAMPLE), structures, DatasetSettings.from_mapping({"name": "t", "path": str(SAMPLE), "limit": 8}))
    settings = EmbedSettings.from_mapping({"threads": 1, "device": "cpu"})
    stores = {}
    for model in models:
        stores[model] = str(tmp_path / f"{model}.zarr")
        embed(structures, stores[model], model=model, spec=ModelSpec.from_mapping({}), settings=settings,
              progress=False)  # fmt: skip
    anchor_store = str(tmp_path / "anchors.zarr")
    choice = AnchorSettings.from_mapping({"reference_model": models[0], "n": 12, "method": "random", "atoms": "unique"})
    anchors(anchor_store, structures=structures, embedding=stores[models[0]], settings=choice)
    return structures, stores, anchor_store


@pytest.mark.slow
def test_projecting_through_the_exported_set_gives_the_study_coordinates(tmp_path):
    """chgnet-0.3.0 embeds the anchor structures again, alone and from the extxyz file (positions written to 1e-8 A):
    its coordinates agree with the study's to 1e-6 (float32 rounding); the element control's exactly."""
    from platonic.anchor_set import read_anchor_set
    from platonic.stages.align import anchor_set, project
    from platonic.stages.embed import run as embed
    from platonic.stages.prepare import run as prepare
    from platonic.store import open_store

    models = ["chgnet-0.3.0", "element"]
    structures, stores, anchor_store = small_study(tmp_path, models)
    exported = str(tmp_path / "anchor_set.extxyz")
    anchor_set(exported, anchors=anchor_store, structures=structures)
    read = read_anchor_set(exported)
    study_anchors = open_store(anchor_store).load()
    np.testing.assert_array_equal(read.study_atom, study_anchors["anchor_atom"].values)
    structure_store = open_store(structures).load()
    np.testing.assert_array_equal(read.site, structure_store["site"].values[read.study_atom])
    np.testing.assert_array_equal(read.Z, structure_store["Z"].values[read.study_atom])
    assert read.attrs["anchor_set_hash"] == study_anchors.attrs["anchor_set_hash"]
    assert read.attrs["reference_model"] == "chgnet-0.3.0" and read.attrs["method"] == "random"

    frames = str(tmp_path / "frames.zarr")
    prepare(exported, frames, DatasetSettings.from_mapping({"name": "a", "path": exported}))
    assert open_store(frames).attrs["structure_set_hash"] == read.attrs["anchor_structures_hash"]
    for model, tolerance in (("chgnet-0.3.0", 1e-6), ("element", 0.0)):
        alone = str(tmp_path / f"frames-{model}.zarr")
        embed(frames, alone, model=model, spec=ModelSpec.from_mapping({}),
              settings=EmbedSettings.from_mapping({"threads": 1, "device": "cpu"}), progress=False)  # fmt: skip
        project(stores[model], anchor_store, str(tmp_path / f"study-{model}.zarr"))
        project(stores[model], exported, str(tmp_path / f"set-{model}.zarr"), anchor_embedding=alone)
        study = open_store(tmp_path / f"study-{model}.zarr").load()
        through_set = open_store(tmp_path / f"set-{model}.zarr").load()
        np.testing.assert_allclose(through_set["coordinate"].values, study["coordinate"].values, rtol=0, atol=tolerance)
        np.testing.assert_array_equal(through_set["anchor_atom"].values, study["anchor_atom"].values)
        assert through_set.attrs["anchor_set_hash"] == study.attrs["anchor_set_hash"]


@pytest.mark.slow
def test_a_changed_frame_or_a_missing_anchor_embedding_is_refused(tmp_path):
    from platonic.stages.align import anchor_set, project

    structures, stores, anchor_store = small_study(tmp_path, ["element"])
    exported = tmp_path / "anchor_set.extxyz"
    anchor_set(str(exported), anchors=anchor_store, structures=structures)
    with pytest.raises(ValueError, match="give --anchor-embedding, element's embedding store"):
        project(stores["element"], str(exported), str(tmp_path / "p.zarr"))
    # the study's own embedding store holds the anchor atoms too: the set's coordinates are the store's
    project(stores["element"], str(exported), str(tmp_path / "p.zarr"), anchor_embedding=stores["element"])
    # the anchors' rows from other weights of the same model name are refused
    from platonic.store import open_store, write_store

    other = open_store(stores["element"]).load()
    other.attrs["model_layer"] = "another layer"
    write_store(other, tmp_path / "other.zarr")
    with pytest.raises(ValueError, match=r"was embedded by another element .*\(layer another layer vs "):
        project(
            stores["element"], str(exported), str(tmp_path / "r.zarr"), anchor_embedding=str(tmp_path / "other.zarr")
        )
    lines = exported.read_text().splitlines()
    fields = lines[2].split()
    fields[1] = f"{float(fields[1]) + 0.01:.8f}"  # move the first frame's first atom by 0.01 A
    lines[2] = " ".join(fields)
    exported.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"frame 0 \(.*\) of .* does not match its sha256"):
        project(stores["element"], str(exported), str(tmp_path / "q.zarr"), anchor_embedding=stores["element"])
