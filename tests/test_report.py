import json

import numpy as np
import xarray as xr

from platonic.cli import main
from platonic.report import exclusion_rows, model_rows, parameter_rows, provenance_html
from platonic.store import write_store

SHA = "ab" * 32


def _embedding(model, reasons):
    # three structures of 2, 1 and 2 atoms
    structure_id = np.array(["s0", "s0", "s1", "s2", "s2"], dtype=object)
    valid = np.repeat([not r for r in reasons], [2, 1, 2])
    return xr.Dataset(
        {
            "embedding": (("atom", "feature"), np.ones((5, 3), np.float32)),
            "valid": (("atom",), valid),
            "exclusion_reason": (("structure",), np.array(reasons, dtype=object)),
        },
        coords={"atom": np.arange(5), "structure_id": ("atom", structure_id), "Z": ("atom", [1, 8, 26, 1, 1])},
        attrs={
            "kind": "embedding", "model": model, "model_family": "chgnet", "model_package": "chgnet",
            "model_package_version": "0.4.2", "model_checkpoint": "0.3.0", "model_checkpoint_file": "c.pth",
            "model_checkpoint_sha256": SHA, "model_layer": "atom_conv_layers[2]", "model_forward_dtype": "float32",
            "model_device": "cpu", "model_options": {"modal": "PBE"}, "model_parameters": 412525,
            "structure_set_hash": "h" * 64,
        },
    )  # fmt: skip


def _stores():
    embeddings = [_embedding("m-a", ["", "", ""]), _embedding("m-b", ["", "element Xx not supported", ""])]
    structures = xr.Dataset(
        attrs={"kind": "structures", "source": "data/x.csv", "n_structures": 3, "n_atoms": 5,
               "structure_set_hash": "h" * 64, "rejected_ids": ["bad-1"], "rejected_reasons": ["unreadable CIF"]}
    )  # fmt: skip
    anchors = xr.Dataset(
        {"anchor_atom": (("anchor",), [0, 3])},
        attrs={"kind": "anchors", "method": "direct", "seed": 7, "reference_model": "m-a", "anchor_set_hash": "c" * 64},
    )
    similarity = xr.Dataset(
        {"n_samples": (("metric",), [4, 2])},
        coords={"metric": ["linear_cka", "optimal_transport"]},
        attrs={"kind": "similarity", "n_atoms": 4, "n_excluded_atoms": 1, "platonic_version": "0.1.0"},
    )
    return embeddings, structures, anchors, similarity


def test_model_rows_carry_provenance_and_exclusions():
    embeddings, *_ = _stores()
    rows = model_rows(embeddings)
    assert [r["model"] for r in rows] == ["m-a", "m-b"]
    assert rows[1]["checkpoint sha256"] == SHA and rows[1]["version"] == "0.4.2"
    assert rows[1]["options"] == '{"modal": "PBE"}'
    assert rows[1]["parameters"] == "412525"
    assert (rows[0]["excluded structures"], rows[0]["excluded atoms"]) == ("0", "0")
    assert (rows[1]["excluded structures"], rows[1]["excluded atoms"]) == ("1", "1")
    assert exclusion_rows(embeddings) == [{"model": "m-b", "structures": "1: s1", "reason": "element Xx not supported"}]


def test_parameters_are_flattened_to_dotted_keys():
    rows = parameter_rows({"similarity": {"k": 10, "metrics": ["a", "b"]}, "dataset": {"name": "x"}})
    assert rows == [
        {"parameter": "similarity.k", "value": "10"},
        {"parameter": "similarity.metrics", "value": '["a", "b"]'},
        {"parameter": "dataset.name", "value": "x"},
    ]


def test_provenance_page_has_every_table(tmp_path):
    page = provenance_html(*_stores(), {"anchors": {"n": 2}})
    for text in [
        "<h2>Models</h2>",
        "Excluded structures and why",
        "Run parameters",
        "anchors.n",
        SHA,
        "direct, 2, 7",
        "unreadable CIF",
        "element Xx not supported",
        "linear_cka: 4, optimal_transport: 2",
    ]:
        assert text in page, text  # fmt: skip
    # in the wide tables a hash is shortened (full value on hover); the checksums table has each in full
    assert page.count(f'title="{SHA}">{SHA[:12]}&hellip;') == 2
    assert page.count(f'<td class="hash">{SHA}</td>') == 2 and f'<td class="hash">{"c" * 64}</td>' in page
    # the CLI writes the same page from stores on disk
    embeddings, structures, anchors, similarity = _stores()
    paths = []
    for name, ds in [("a", embeddings[0]), ("b", embeddings[1]), ("s", structures), ("n", anchors), ("m", similarity)]:
        ds.attrs["complete"] = True
        write_store(ds, tmp_path / f"{name}.zarr")
        paths.append(str(tmp_path / f"{name}.zarr"))
    out = tmp_path / "p.html"
    parameters = tmp_path / "parameters.json"
    parameters.write_text(json.dumps({"anchors": {"n": 2}}))
    argv = ["provenance", str(out), "--embeddings", paths[0], paths[1], "--structures", paths[2],
            "--anchors", paths[3], "--similarity", paths[4], "--parameters", str(parameters)]  # fmt: skip
    assert main(argv) == 0
    assert out.read_text() == page


def test_the_provenance_row_names_a_given_anchor_sets_source_not_a_seed():
    from platonic.report import data_rows

    structures = xr.Dataset(attrs={"source": "train.csv", "n_structures": 3, "n_atoms": 9})
    similarity = xr.Dataset()
    drawn = xr.Dataset({"anchor_atom": ("anchor", np.arange(4))}, attrs={"method": "direct", "seed": 7})
    given = xr.Dataset(
        {"anchor_atom": ("anchor", np.arange(4))},
        attrs={"method": "indices", "seed": 7, "indices_source": "anchors.txt", "indices_sha256": "ab" * 32},
    )
    rows = {}
    for name, anchors in (("drawn", drawn), ("given", given)):
        table = {row["item"]: row["value"] for row in data_rows(structures, anchors, similarity)}
        rows[name] = table["anchor method, n, seed (or source)"]
    assert rows["drawn"] == "direct, 4, 7"
    assert rows["given"] == f"indices, 4, given by anchors.txt ({'ab' * 6})"
