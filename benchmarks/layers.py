"""Cost of every layer from one forward pass (``layers: all``) against one layer per pass.

For each model, the same structures are embedded (a) once for the default layer (``embed``, what a model entry
without ``layers`` runs), (b) once for every layer together (``embed_layers`` of ``layers: all``) and (c) once per
layer, ``layer: k`` for each k (what L separate config entries cost). Each time is the best of ``--repeats`` after a
warm-up, the passes taking turns within each repeat; all are measured in one process, so their ratios compare like
with like. `--json` writes them.

    python benchmarks/layers.py --structures 48 --models chgnet-0.3.0 sevennet-0-11jul2024 diep
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


def best_times(runs: dict, structures, repeats: int) -> dict[str, float]:
    """Best of ``repeats`` wall times of each ``runs[name](structures)``, after a warm-up on the first 8
    structures; the runs take turns within each repeat, so that load from other processes falls on all alike."""
    for run in runs.values():
        run(structures[:8])
    best = dict.fromkeys(runs, np.inf)
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(structures)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["chgnet-0.3.0", "sevennet-0-11jul2024", "diep"])
    parser.add_argument("--structures", type=int, default=48, help="first N structures of the bundled sample")
    parser.add_argument("--batch-size", type=int, default=16, help="structures per forward pass (embed.batch_size)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
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
        f"{len(structures)} structures, {n_atoms} atoms, batch size {args.batch_size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'model':22s} {'device':6s} {'L':>2s} {'1 layer s':>10s} {'all layers s':>13s} {'L x 1 layer s':>14s} "
        f"{'all / 1':>8s} {'L x 1 / all':>12s}"
    )
    results = []
    for name in args.models:
        preset = PRESETS[name]
        settings = dict(checkpoint=preset["checkpoint"], device=args.device, batch_size=args.batch_size)

        def adapter(preset=preset, settings=settings, **kwargs):
            return load_adapter(preset["family"], **settings, **preset.get("options", {}), **kwargs)

        try:
            stack = adapter(layers="all")
            stack.load()
        except ModelError as err:
            print(f"{name:22s} skipped: {err}")
            continue
        n_layers = len(stack.selected_layers)
        runs = {"one": adapter().embed, "all": stack.embed_layers}
        runs.update({f"layer {k}": adapter(layer=k).embed for k in range(n_layers)})
        times = best_times(runs, structures, args.repeats)
        one, every = times["one"], times["all"]
        each = sum(times[f"layer {k}"] for k in range(n_layers))
        print(
            f"{name:22s} {stack.device:6s} {n_layers:2d} {one:10.2f} {every:13.2f} {each:14.2f} "
            f"{every / one:8.2f} {each / every:12.2f}"
        )
        results.append(
            {
                "model": name,
                "device": stack.device,
                "structures": len(structures),
                "atoms": n_atoms,
                "batch_size": args.batch_size,
                "layers": n_layers,
                "one_layer_s": one,
                "all_layers_s": every,
                "each_layer_s": each,
                "all_over_one": every / one,
                "each_over_all": each / every,
            }
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
