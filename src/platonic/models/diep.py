"""DIEP (package ``diep`` >= 2, standalone PyTorch Geometric; weights ship in the wheel): atom features entering
the readout.

diep 2 no longer depends on matgl (it vendors an M3GNet-style stack with DIEP's integrated-potential bond and
triplet features), and its model directories name ``diep_pyg`` classes, so it is a family of its own rather than a
matgl checkpoint. Graphs come from diep's ``Atoms2Graph`` and ``collate_fn_graph``; the forward pass runs through
diep's ``Potential`` with every derivative switched off, and the features are read from the graph blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import ase
import numpy as np
from ase.data import atomic_numbers

from platonic.models.base import Adapter, Family, Loaded, ModelError, layer_outputs

if TYPE_CHECKING:
    import torch

MODEL_FILES = ("model.json", "model.pt", "state.pt")
WEIGHTS_FILE = "state.pt"  # the parameters; model.pt holds only the constructor arguments


class DIEPAdapter(Adapter):
    """``checkpoint`` is ``diep_fold1`` (the model in the wheel, or ``$DIEP_MODEL_DIR``) or a directory exported
    by ``diep.export`` / ``Potential.save``. ``layer`` ``k`` takes the node features after graph block ``k``
    (0-based, negative from the end); the default is the last block, whose output the readout consumes. ``layers``
    takes any of the graph blocks (``all``: every block) from one forward pass, one forward hook per block."""

    family = "diep"
    package = "diep"
    default_checkpoint = "diep_fold1"
    # float32 only: diep casts its DIEP integrals to a module-global dtype, settable only for the whole process
    dtypes = ("float32",)

    def _load(self) -> Loaded:
        from diep.ext.ase import Atoms2Graph
        from diep.pretrained import DEFAULT_MODEL_DIR, load_potential

        name = str(self.checkpoint)
        # $DIEP_MODEL_DIR may move the released model; the name still means it
        packaged = name in (self.default_checkpoint, DEFAULT_MODEL_DIR.name)
        folder = DEFAULT_MODEL_DIR if packaged else Path(name).expanduser()
        missing = [file for file in MODEL_FILES if not (folder / file).is_file()]
        if missing:
            raise ModelError(
                f"DIEP checkpoint {name!r} is neither the packaged {DEFAULT_MODEL_DIR.name} nor a model directory "
                f"({folder} lacks {', '.join(missing)})"
            )
        try:
            potential = load_potential(folder, device=self.device, stress=False)
        except (RuntimeError, ValueError, KeyError, FileNotFoundError) as err:
            raise ModelError(f"DIEP model in {folder} cannot be loaded: {type(err).__name__}: {err}") from err
        # Our own instance: no derivatives and no chunked (force-only) path, so forward is the plain forward pass.
        for flag in ("calc_forces", "calc_stresses", "calc_hessian", "calc_magmom", "apply_chunking"):
            setattr(potential, flag, False)
        self.model = potential.eval()
        blocks = potential.model.graph_layers
        try:
            index = -1 if self.layer is None else int(self.layer)
        except (TypeError, ValueError):
            raise ModelError(f"DIEP layer must be a graph-block index, not {self.layer!r}") from None
        if not -len(blocks) <= index < len(blocks):
            raise ModelError(f"DIEP model has {len(blocks)} graph blocks; layer {index} does not exist")
        self._block = index % len(blocks)
        self._converter = Atoms2Graph(tuple(potential.model.element_types), float(potential.model.cutoff))
        supported = frozenset(atomic_numbers[symbol] for symbol in potential.model.element_types)
        # named as in DIEP's own predict_structure(return_features=True): gc_1 .. gc_n
        return Loaded(folder / WEIGHTS_FILE, supported, f"gc_{self._block + 1}.node_feat")

    def _layer_names(self) -> list[str]:
        return [f"gc_{k + 1}.node_feat" for k in range(len(self.model.model.graph_layers))]

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        return self._hooked_layer(structures, self._block)

    def _embed_batch_layers(self, structures: list[ase.Atoms], names: list[str]) -> list[dict[str, np.ndarray]]:
        return self._hooked_layers(structures, names, self._block)

    def _forward(self, structures: list[ase.Atoms], blocks: list[int]) -> dict[int, torch.Tensor]:
        """One forward pass of the batch; the node features after each graph block in ``blocks``, read by hooks."""
        import torch
        from diep.graph.data import collate_fn_graph

        items = []
        for atoms in structures:
            unknown = self.unsupported(atoms)
            if unknown:
                raise ModelError(f"DIEP model {self.checkpoint!r} does not know atomic numbers {unknown}")
            # wrapped into the cell as diep's own DIEPCalculator does: exact under PBC, and the neighbour search
            # cost grows with how far atoms sit outside the cell
            wrapped = atoms.copy()
            wrapped.wrap()
            graph, lattice, state = self._converter.get_graph(wrapped)
            items.append((graph, lattice, torch.as_tensor(state), {"none": 0.0}))  # label unused
        graphs, lattices, states, _ = collate_fn_graph(items)
        lattices = lattices.reshape(-1, 3, 3)  # (1, 3, 3) for one structure, squeezed (B, 3, 3) otherwise
        modules = {k: self.model.model.graph_layers[k] for k in blocks}
        # M3GNet-style blocks return (edge_feat, node_feat, state_feat)
        with layer_outputs(modules, pick=lambda output: output[1]) as captured, torch.no_grad():
            self.model(graphs.to(self.device), lattices.to(self.device), states.to(self.device))
        return captured


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
PRESETS = {
    "diep": {
        "checkpoint": "diep_fold1",
        "architecture": "DIEP (M3GNet-style)",
        "training_data": ["MatPES-r2SCAN"],
        "fidelity": "r2SCAN",
        "source": "https://pypi.org/project/diep/2.0.0/ (README: trained on 349,107 MatPES r2SCAN structures) and "
        "diep/pretrained_models/diep_fold1/PROVENANCE.json (functional: R2SCAN)",
    },
}

FAMILY = Family(DIEPAdapter, extra="diep", presets=PRESETS)
