import csv
import re
import sys

import numpy as np
import pytest

from platonic.structures import StructureError, read_structures, structure_set_hash


def _count_sites(cif_text: str) -> int:
    """Count atom-site rows of a P1 CIF by its text alone (independent of ASE's parser)."""
    return sum(1 for line in cif_text.splitlines() if re.match(r"^\s+[A-Z][a-z]?\s+[A-Z][a-z]?\d+\s+1\s", line))


def test_reads_the_bundled_training_split(sample_csv):
    csv.field_size_limit(sys.maxsize)
    with open(sample_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    structures = read_structures(sample_csv)
    assert len(structures) == len(rows) == 847
    assert structures.rejected == []
    assert structures.ids == [row["material_id"] for row in rows]
    assert [len(a) for a in structures.atoms] == [_count_sites(row["cif"]) for row in rows]
    assert structures.n_atoms == 9047
    np.testing.assert_allclose(structures.labels["band_gap"], [float(row["band_gap"]) for row in rows])


def test_limit_keeps_the_first_structures(sample_csv):
    full = read_structures(sample_csv, limit=10)
    assert len(full) == 10
    assert full.ids == read_structures(sample_csv).ids[:10]


def test_bad_entries_are_recorded_not_raised(tmp_path, sample_csv):
    with open(sample_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        good = [next(reader) for _ in range(2)]
    overlapping = dict(good[1], material_id="overlap")
    # put a second atom 0.1 A (fractional ~0.02) from the first one
    cif_lines = good[0]["cif"].rstrip("\n").splitlines()
    first_site = next(line for line in cif_lines if re.match(r"^\s+[A-Z][a-z]?\s+[A-Z][a-z]?\d+\s+1\s", line))
    parts = first_site.split()
    parts[1] += "x"
    parts[3] = f"{float(parts[3]) + 0.01:.8f}"
    overlapping["cif"] = "\n".join(cif_lines + ["  " + "  ".join(parts)]) + "\n"
    broken = dict(good[0], material_id="broken", cif="data_x\n_cell_length_a oops\n")
    path = tmp_path / "set.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(good[0]))
        writer.writeheader()
        writer.writerows([good[0], broken, overlapping, good[1]])
    structures = read_structures(path)
    assert structures.ids == [good[0]["material_id"], good[1]["material_id"]]
    rejected = dict(structures.rejected)
    assert set(rejected) == {"broken", "overlap"}
    assert "overlap" in rejected["overlap"]


def test_missing_and_unknown_files_raise_clear_errors(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        read_structures(tmp_path / "nope.csv")
    odd = tmp_path / "set.json"
    odd.write_text("{}")
    with pytest.raises(StructureError, match="expected an MP-20 CSV"):
        read_structures(odd)
    no_cif = tmp_path / "plain.csv"
    no_cif.write_text("a,b\n1,2\n")
    with pytest.raises(StructureError, match="no `cif` column"):
        read_structures(no_cif)


def test_extxyz_round_trip(tmp_path, few_structures):
    import ase.io

    path = tmp_path / "set.extxyz"
    frames = []
    for atoms, structure_id in zip(few_structures.atoms, few_structures.ids, strict=True):
        frames.append(atoms.copy())
        frames[-1].info["material_id"] = structure_id
    ase.io.write(path, frames)
    again = read_structures(path)
    assert again.ids == few_structures.ids
    for a, b in zip(again.atoms, few_structures.atoms, strict=True):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)


def test_hash_changes_with_any_input(few_structures):
    atoms, ids = few_structures.atoms, few_structures.ids
    reference = structure_set_hash(atoms, ids)
    assert structure_set_hash([a.copy() for a in atoms], list(ids)) == reference
    moved = [a.copy() for a in atoms]
    moved[2].positions[0, 0] += 1e-9
    assert structure_set_hash(moved, ids) != reference
    assert structure_set_hash(atoms, ids[::-1]) != reference
