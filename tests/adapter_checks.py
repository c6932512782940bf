"""Checks every adapter must pass, shared by the per-family test modules.

Each takes an adapter and a few real ``ase.Atoms`` and asserts the contract of
``platonic.models.base.Adapter``: symmetry invariance, batching and determinism.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.spatial.transform import Rotation


def _scale(features) -> float:
    return max(1.0, float(np.abs(np.concatenate(features)).max()))


def moved_copies(structures, seed: int = 7):
    """Rotated (cell and positions), translated and permuted copies, with the permutations used."""
    rng = np.random.default_rng(seed)
    moved, permutations = [], []
    for atoms in structures:
        rotation = Rotation.random(random_state=rng).as_matrix()
        order = rng.permutation(len(atoms))
        copy = atoms[order]
        copy.set_cell(copy.cell.array @ rotation.T, scale_atoms=False)
        copy.positions = copy.positions @ rotation.T + rng.normal(size=3)
        moved.append(copy)
        permutations.append(order)
    return moved, permutations


def check_invariance(adapter, structures, rtol: float = 1e-4) -> None:
    """Rotating, translating and permuting atoms permutes the rows and changes nothing else."""
    reference = adapter.embed(structures)
    moved, permutations = moved_copies(structures)
    for ref, out, order in zip(reference, adapter.embed(moved), permutations, strict=True):
        np.testing.assert_allclose(out, ref[order], atol=rtol * _scale(reference))


def check_batching(adapter, structures, rtol: float = 1e-5) -> None:
    """Batched equals one-by-one; the same input twice gives identical numbers; shapes and dtype."""
    batched = adapter.embed(structures)
    single = [adapter.embed([atoms])[0] for atoms in structures]
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a, b, atol=rtol * _scale(batched))
    for a, b in zip(batched, adapter.embed(structures), strict=True):
        np.testing.assert_array_equal(a, b)
    for features, atoms in zip(batched, structures, strict=True):
        assert features.shape == (len(atoms), batched[0].shape[1])
        assert features.dtype == np.dtype(adapter.dtype)
        assert np.isfinite(features).all()


def check_provenance(adapter) -> None:
    info = adapter.provenance()
    assert info["package_version"] not in ("", "not installed")
    if adapter.checkpoint_path is None:  # weight-free: the sha256 of the settings stands in for a file's
        assert info["weights"] == "none" and info["checkpoint_file"] == ""
        assert info["checkpoint_sha256"] == hashlib.sha256(info["settings"].encode()).hexdigest()
        assert info["layer"] == adapter.layer_name
        assert info["parameters"] == 0  # a recipe has no parameters
        return
    # counted from the loaded torch module; every family keeps one (test_models.py checks the count itself)
    assert isinstance(info["parameters"], int) and info["parameters"] > 0
    assert adapter.checkpoint_path.is_file()
    assert info["checkpoint_file"] == adapter.checkpoint_path.name
    assert len(info["checkpoint_sha256"]) == 64
    assert info["layer"] == adapter.layer_name


class LayerView:
    """One layer of a multi-layer adapter (``layers`` set) seen as an adapter of its own: ``embed`` returns that
    layer's features from `embed_layers`, so every check above runs on each layer."""

    def __init__(self, adapter, name: str):
        self.adapter, self.name = adapter, name
        self.dtype = adapter.dtype

    def embed(self, structures):
        return [item[self.name] for item in self.adapter.embed_layers(structures)]


def check_every_layer(adapter, structures, rtol: float = 1e-4) -> None:
    """Invariance and batching (shapes, dtype, finite values, determinism) of every layer of ``adapter.layers``
    and of the default features beside them."""
    names = [name for _, name in adapter.selected_layers] + [adapter.layer_name]
    for name in dict.fromkeys(names):
        view = LayerView(adapter, name)
        check_invariance(view, structures, rtol=rtol)
        check_batching(view, structures)
