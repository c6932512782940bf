"""The interactive map: its chemiscope dataset against independently computed values, its screened environments,
and the page in a headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from analysis_stores import element_clusters, rotation, write_study

from platonic.atom_maps import principal_plane
from platonic.interactive_map import chemiscope_dataset, onto_plane, structure_entries, write_page
from platonic.settings import AuditSettings, MapSettings
from platonic.stages.analysis import audit
from platonic.stages.map import map_dataset
from platonic.store import open_store, write_store

pytest.importorskip("chemiscope", reason="the interactive map inlines chemiscope's viewer: pip install chemiscope")

ELEMENTS = [3, 8, 11, 26]  # Li, O, Na, Fe: groups 1, 16, 1, 8
K = 4


def _with_geometry(path, orbit):
    """The synthetic structure store with positions, cells and symmetry orbits (what a prepared store holds)."""
    ds = open_store(path).load()
    rng = np.random.default_rng(5)
    ds["positions"] = (("atom", "xyz"), rng.uniform(0, 6, size=(ds.sizes["atom"], 3)))
    ds["cell"] = (("structure", "vector", "xyz"), np.tile(6.0 * np.eye(3), (ds.sizes["structure"], 1, 1)))
    ds["orbit"] = ("atom", orbit)
    ds["multiplicity"] = ("atom", np.bincount(orbit, minlength=len(orbit))[orbit])
    return write_store(ds, path.with_name("structures_full.zarr"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two trained models (rotated noisy copies of one space) and a control; structure 0's atoms 0 and 1 are
    one orbit (same element), so the compared atoms leave atom 1 out."""
    root = tmp_path_factory.mktemp("map")
    structure_index, z, base = element_clusters(seed=1, n_structures=30, elements=ELEMENTS, width=12, noise=0.3)
    rng = np.random.default_rng(2)
    z[1] = z[0]
    raw = {f"m{i}": (base + 0.05 * rng.normal(size=base.shape)) @ rotation(20 + i, 12) for i in range(2)}
    raw["ctl"] = rng.normal(size=base.shape)
    anchors = rng.choice(len(z), size=10, replace=False)
    paths = write_study(root, raw, z, structure_index, {}, anchors)
    orbit = np.arange(len(z))
    orbit[1] = 0
    paths["structures"] = _with_geometry(paths["structures"], orbit)
    anchor_store = open_store(paths["anchors"]).load()
    anchor_store["compared"] = ("atom", orbit == np.arange(len(z)))
    paths["anchors"] = write_store(anchor_store, root / "anchors_unique.zarr")
    # m1 predicts (as embed.predictions stores it): forces per atom, energy per atom per structure
    m1 = open_store(paths["embeddings"][1]).load()
    m1["forces"] = (("atom", "cartesian"), rng.normal(size=(len(z), 3)))
    m1["energy_per_atom"] = ("structure", rng.normal(size=int(structure_index.max()) + 1))
    paths["embeddings"][1] = write_store(m1, root / "m1_predicting.zarr")
    paths["audit"] = root / "audit.zarr"
    audit(str(paths["audit"]), projections=[str(p) for p in paths["projections"]], anchors=str(paths["anchors"]),
          structures=str(paths["structures"]), elements_table=str(root / "e.csv"),
          structures_table=str(root / "s.csv"), bias_table=str(root / "b.csv"), settings=AuditSettings(k=3),
          controls=("ctl",))  # fmt: skip
    return paths, raw, z, structure_index, orbit


def _dataset(paths, **screened):
    return map_dataset(
        structures=str(paths["structures"]), projections=[str(p) for p in paths["projections"]],
        embeddings=[str(p) for p in paths["embeddings"]], anchors=str(paths["anchors"]), audit=str(paths["audit"]),
        settings=MapSettings(k=K), controls=("ctl",), **screened,
    )  # fmt: skip


def _values(dataset, name):
    return np.array(dataset["properties"][name]["values"])


def test_the_map_holds_every_compared_environment_with_independently_computed_values(study):
    paths, raw, z, structure_index, orbit = study
    dataset = _dataset(paths)
    compared = np.flatnonzero(orbit == np.arange(len(z)))
    n = len(compared)
    assert len(dataset["environments"]) == n == len(z) - 1
    expected = {"joint PC1", "joint PC2", "m0 PC1", "m0 PC2", "m1 PC1", "m1 PC2", "element", "group",
                "disagreement", "atypicality", "symmetry-breaking spread", "screened", "material_id", "m1 |force|",
                "m1 energy per atom"}  # fmt: skip
    assert set(dataset["properties"]) == expected  # the control is not on the map
    per_structure = {"material_id", "m1 energy per atom"}
    assert all((p["target"] == "structure") == (k in per_structure) for k, p in dataset["properties"].items())
    # each environment points at its atom: structure and centre give back the element and the position
    positions = open_store(paths["structures"])["positions"].values
    for i in (0, 1, 7, n - 1):
        env = dataset["environments"][i]
        s = dataset["structures"][env["structure"]]
        atom = compared[i]
        assert s["names"][env["center"]] == _values(dataset, "element")[i]
        assert np.allclose([s["x"][env["center"]], s["y"][env["center"]], s["z"][env["center"]]], positions[atom])
    # PCA: numpy's SVD of both trained models' anchor rows stacked, each axis's largest coordinate positive
    rows = {m: np.asarray(open_store(p)["coordinate"].values[compared], np.float64)
            for m, p in zip(raw, paths["projections"], strict=True) if m != "ctl"}  # fmt: skip
    stacked = np.concatenate(list(rows.values()))
    centred = stacked - stacked.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    plane = centred @ vt[:2].T
    plane *= np.sign(plane[np.abs(plane).argmax(axis=0), [0, 1]])
    per_model = plane.reshape(2, n, 2)
    for i, axis in enumerate(("PC1", "PC2")):
        assert np.allclose(_values(dataset, f"m1 {axis}"), per_model[1, :, i], atol=1e-5)
        assert np.allclose(_values(dataset, f"joint {axis}"), per_model.mean(axis=0)[:, i], atol=1e-5)
    groups = {3: 1, 8: 16, 11: 1, 26: 8}
    assert list(_values(dataset, "group")) == [groups[v] for v in z[compared]]
    # disagreement: each model's unit row against the two models' mean unit row, averaged over the models
    unit = np.stack([r / np.linalg.norm(r, axis=1, keepdims=True) for r in rows.values()])
    distance = np.linalg.norm(unit - unit.mean(axis=0), axis=2).mean(axis=0)
    assert np.allclose(_values(dataset, "disagreement"), distance, atol=1e-5)
    # atypicality of atom 5: per model its mean cosine distance to the K nearest atoms of other structures, as a
    # percentile of every atom's, averaged over the models
    percentiles = []
    for u in unit:
        cos = u @ u.T
        other = structure_index[compared][:, None] != structure_index[compared][None, :]
        d = np.array([np.sort(1 - cos[a][other[a]])[:K].mean() for a in range(n)])
        percentiles.append(100 * ((d < d[5]).sum() + 0.5 * (d == d[5]).sum()) / n)
    assert _values(dataset, "atypicality")[5] == pytest.approx(np.mean(percentiles), abs=1e-4)
    # symmetry-breaking spread: only atom 0's orbit has a copy; its spread is positive, the others NaN
    spread = _values(dataset, "symmetry-breaking spread")
    assert spread[0] > 0 and np.isnan(spread[1:]).all()
    assert set(_values(dataset, "screened")) == {"study"}
    # predictions of the one model that made them: its force's length per atom, its energy per structure
    m1 = open_store(paths["embeddings"][1])
    assert np.allclose(_values(dataset, "m1 |force|"), np.linalg.norm(m1["forces"].values[compared], axis=1), atol=1e-5)
    shown = np.unique(structure_index[compared])
    assert np.allclose(_values(dataset, "m1 energy per atom"), m1["energy_per_atom"].values[shown], atol=1e-5)
    assert dataset["settings"]["map"]["x"] == {"property": "joint PC1"} and "symbol" not in dataset["settings"]["map"]


def _screened_stores(root, paths):
    """A screened set: copies of the study's structures 0 and 1 (their projections are the study's rows), as a
    structure store and projection stores on the study's anchors."""
    study = open_store(paths["structures"]).load()
    keep = np.isin(study["structure_index"].values, [0, 1])
    screened = study.isel(atom=keep, structure=[0, 1])
    screened = screened.assign_coords(material_id=("structure", np.array(["new-0", "new-1"], dtype=object)))
    screened = screened.drop_vars("orbit").assign_attrs(structure_set_hash="screened")
    out = {"structures": str(write_store(screened, root / "screened.zarr")), "projections": []}
    for p in paths["projections"]:
        store = open_store(p).load().isel(atom=keep).assign_attrs(structure_set_hash="screened")
        out["projections"].append(str(write_store(store, root / f"screened_{store.attrs['model']}.zarr")))
    return out


def test_screened_environments_are_marked_and_land_where_their_copies_in_the_study_are(study, tmp_path):
    paths, _, z, structure_index, orbit = study
    screened = _screened_stores(tmp_path, paths)
    dataset = _dataset(paths, screened_structures=screened["structures"],
                       screened_projections=tuple(screened["projections"]))  # fmt: skip
    n_study = int((orbit == np.arange(len(z))).sum())
    n_new = int(np.isin(structure_index, [0, 1]).sum())  # the screened store has no orbits: every atom
    assert len(dataset["environments"]) == n_study + n_new
    marks = _values(dataset, "screened")
    assert list(marks) == ["study"] * n_study + ["screened"] * n_new
    assert dataset["settings"]["map"]["symbol"] == "screened"
    # the screened copies of structure 0 and 1's atoms sit on those atoms' places (atom 1 is not compared: skip)
    compared = np.flatnonzero(orbit == np.arange(len(z)))
    new_atoms = np.flatnonzero(np.isin(structure_index, [0, 1]))
    for key in ("joint PC1", "m0 PC2"):
        values = _values(dataset, key)
        for j, atom in enumerate(new_atoms):
            if atom in compared:
                assert values[n_study + j] == pytest.approx(values[np.searchsorted(compared, atom)], abs=1e-4)
    assert np.isnan(_values(dataset, "disagreement")[n_study:]).all()
    atypical = _values(dataset, "atypicality")[n_study:]
    assert np.all((atypical >= 0) & (atypical <= 100))
    names = [dataset["properties"]["material_id"]["values"][e["structure"]] for e in dataset["environments"]]
    assert names[-1] == "screened: new-1"


def test_onto_plane_gives_back_the_principal_plane_of_its_reference():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6))
    plane = principal_plane(reference)
    assert np.allclose(onto_plane(reference, plane, reference), plane)
    shifted = onto_plane(reference, plane, reference[:3] + 1.0)
    centred = reference - reference.mean(axis=0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:2].T * np.sign(plane[np.abs(plane).argmax(0), [0, 1]])
    assert np.allclose(shifted, (reference[:3] + 1.0 - reference.mean(axis=0)) @ axes)


def test_the_dataset_refuses_environments_outside_its_structures():
    entries = structure_entries([["Na", "Cl"]], [np.zeros((2, 3))], [np.eye(3)])
    props = {"a": (np.array([1.0]), "a")}
    with pytest.raises(ValueError, match="not in the structures"):
        chemiscope_dataset(entries, np.array([[0, 2]]), props, name="t", x="a", y="a", color="a")
    with pytest.raises(ValueError, match="has 1 values for 2 atoms"):
        chemiscope_dataset(entries, np.array([[0, 0], [0, 1]]), props, name="t", x="a", y="a", color="a")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# recorded from the page's first script on: every error and console.error
PROBE_HEAD = """<script>window.probeErrors = [];
window.addEventListener("error", function (e) { window.probeErrors.push(String(e.message)); });
const probeConsoleError = console.error;
console.error = function () { window.probeErrors.push(Array.from(arguments).map(String).join(" "));
  probeConsoleError.apply(console, arguments); };</script>"""
# once the viewer is up: the points on the map, then select environment ENV and read what the page shows
PROBE_TAIL = """<script>
function probeReport(info) { const out = document.createElement("pre"); out.id = "probe";
  out.textContent = JSON.stringify(info); document.body.appendChild(out); }
function probeSelect() {
  const v = window.platonicVisualizer, env = PLATONIC_DATASET.environments[ENV];
  const info = {points: v.map._plot.data[0].x.length};
  v.select({environment: ENV, structure: env.structure, atom: env.center});
  setTimeout(function () {
    info.info = v.info._shadow.textContent.replace(/\\s+/g, " ");
    info.shown = Object.keys(v.structure._resolvedStructures).map(Number);
    info.errors = window.probeErrors; probeReport(info); }, 1000);
}
function probeWait(n) {
  if (document.body.dataset.loaded === "yes") { setTimeout(probeSelect, 500); return; }
  if (window.probeErrors.length || n > 300) { probeReport({errors: window.probeErrors, loaded: false}); return; }
  setTimeout(function () { probeWait(n + 1); }, 100);
}
probeWait(0);
</script>"""


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=30000"]
    return subprocess.run([CHROMIUM, *flags, *args, url], capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed; `apt-get install chromium` (Debian) to run this check"
)
def test_the_page_loads_offline_shows_every_point_and_the_selected_structure(study, tmp_path):
    import matplotlib.image

    paths, *_ = study
    dataset = _dataset(paths)
    page = write_page(dataset, tmp_path / "map.html", "synthetic", "a test")
    text = page.read_text()
    assert "http://" not in text.split("<script>")[0] and '<script src="' not in text  # nothing fetched
    env = 7
    probed = tmp_path / "probe.html"
    probing = text.replace("<head>", "<head>" + PROBE_HEAD, 1)
    end = probing.rindex("</body>")
    probed.write_text(probing[:end] + PROBE_TAIL.replace("ENV", str(env)) + probing[end:])
    dom = chromium(probed.as_uri(), "--dump-dom").stdout
    info = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert info["errors"] == []
    assert info["points"] == len(dataset["environments"])
    structure = dataset["environments"][env]["structure"]
    assert f"Properties for structure {structure}" in info["info"]
    assert dataset["properties"]["material_id"]["values"][structure] in info["info"]
    assert structure in info["shown"]
    shot = tmp_path / "map.png"
    chromium(page.as_uri(), "--window-size=1400,900", f"--screenshot={shot}")
    image = matplotlib.image.imread(shot)[:, :, :3]
    left = image[150:800, 50:650]  # the map's points: coloured, not the blank page
    assert (left.std(axis=2) > 0.1).mean() > 0.002
