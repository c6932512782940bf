"""Fan-in at the reference study's scale: CKA and mutual k-NN for all model pairs, raw and anchor space.

Synthetic embeddings with the study's shapes (MP-20 train: 282,847 atoms; 7 models of width 128
or 256, sharing a latent structure so that the numbers are not trivial), 100 anchor atoms.

    python benchmarks/fan_in.py                       # full scale, streamed (platonic's path)
    python benchmarks/fan_in.py --atoms 20000 --compare-dense
    python benchmarks/fan_in.py --atoms 20000 --intervals 100 3   # what bootstrap and chance levels add

``--compare-dense`` also runs a dense reference (N x N Gram matrices and full similarity rows, the
way the reference study computed its metrics on 1,000 atoms) in a separate process, checks that
the numbers agree, and prints the time and peak-memory ratios. ``--intervals B P`` also runs the streamed path with
B structure-bootstrap replicates and P permutations (synthetic structures of 10 atoms) and prints what they cost
relative to the values alone. Peak RSS is the process maximum.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

MODELS = 7
WIDTHS = (128, 256, 128, 256, 128, 128, 256)


def synthetic_spaces(n: int, seed: int = 0, anchors: int = 100) -> dict[str, dict[str, np.ndarray]]:
    """Seven models that see the same 24-dimensional clustered latent through different nonlinear maps."""
    from platonic.projection import anchor_projection

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(400, 24))
    latent = centres[rng.integers(len(centres), size=n)] + 0.4 * rng.normal(size=(n, 24))
    raw, anchor = {}, {}
    rows = np.sort(rng.choice(n, size=anchors, replace=False))
    for m in range(MODELS):
        weights = rng.normal(size=(24, WIDTHS[m])) / np.sqrt(24)
        x = np.tanh(latent @ weights + 0.3 * rng.normal(size=WIDTHS[m]))
        x += (0.1 + 0.05 * m) * rng.normal(size=x.shape)
        raw[f"model-{m}"] = x.astype(np.float32)
        anchor[f"model-{m}"] = anchor_projection(raw[f"model-{m}"], raw[f"model-{m}"][rows])
    return {"raw": raw, "anchor": anchor}


def streamed(spaces, k: int, threads: int, search: str, bootstrap: int = 0, permutations: int = 0) -> dict:
    from platonic.compare.similarity import pairwise_similarity
    from platonic.settings import SimilaritySettings

    n = len(next(iter(spaces["raw"].values())))
    ds = pairwise_similarity(
        spaces,
        structure_index=np.arange(n) // 10,
        settings=SimilaritySettings(
            metrics=("linear_cka", "mutual_knn"), k=k, neighbour_search=search, threads=threads,
            bootstrap=bootstrap, permutations=permutations,
        ),
    )  # fmt: skip
    return {
        f"{metric}|{space}|{a}|{b}": float(ds["similarity"].sel(metric=metric, space=space, model_a=a, model_b=b))
        for metric in ("linear_cka", "mutual_knn")
        for space in spaces
        for a in ds.model_a.values
        for b in ds.model_b.values
        if a < b
    }


def dense(spaces, k: int) -> dict:
    """N x N reference: centred Gram matrices for CKA, full cosine-similarity rows for k-NN.

    Grams are rebuilt for every pair (holding seven 20k x 20k Grams would need 11 GiB)."""

    def gram(x):
        xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
        out = np.empty((len(x), len(x)), dtype=np.float32)
        for i in range(0, len(x), 2048):  # one 20k x 20k dgemm call crashes this OpenBLAS build
            out[i : i + 2048] = xc[i : i + 2048] @ xc.T
        return out

    def frobenius_dot(a, b):
        return sum(float(np.sum(a[i : i + 2048].astype(np.float64) * b[i : i + 2048])) for i in range(0, len(a), 2048))

    out = {}
    for space, models in spaces.items():
        names = list(models)
        self_hsic, neighbours = {}, {}
        for name in names:
            g = gram(models[name])
            self_hsic[name] = frobenius_dot(g, g)
            del g
            x = models[name].astype(np.float64)
            unit = x / np.linalg.norm(x, axis=1, keepdims=True)  # float64: exact neighbour order
            found = np.empty((len(x), k), dtype=np.int64)
            for i in range(0, len(x), 2048):
                similarity = unit[i : i + 2048] @ unit.T
                similarity[np.arange(len(similarity)), np.arange(i, i + len(similarity))] = -np.inf
                found[i : i + 2048] = np.argpartition(-similarity, k, axis=1)[:, :k]
            neighbours[name] = found
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                ga, gb = gram(models[a]), gram(models[b])
                cka = frobenius_dot(ga, gb) / np.sqrt(self_hsic[a] * self_hsic[b])
                del ga, gb
                shared = np.mean([len(set(p) & set(q)) for p, q in zip(neighbours[a], neighbours[b], strict=True)]) / k
                out[f"linear_cka|{space}|{a}|{b}"] = cka
                out[f"mutual_knn|{space}|{a}|{b}"] = float(shared)
    return out


def run(mode: str, atoms: int, k: int, threads: int, search: str, intervals=(0, 0)) -> dict:
    start = time.perf_counter()
    spaces = synthetic_spaces(atoms)
    generated = time.perf_counter()
    values = streamed(spaces, k, threads, search, *intervals) if mode == "streamed" else dense(spaces, k)
    done = time.perf_counter()
    return {
        "mode": mode,
        "atoms": atoms,
        "search": search,
        "threads": threads,
        "seconds_data": generated - start,
        "seconds_metrics": done - generated,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "values": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atoms", type=int, default=282_847)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--search", default="auto", choices=["auto", "exact", "ivf"])
    parser.add_argument("--compare-dense", action="store_true")
    parser.add_argument("--intervals", type=int, nargs=2, default=None, metavar=("B", "P"))
    parser.add_argument("--mode", default=None, choices=["streamed", "dense"], help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.mode:  # child process: one measurement, printed as JSON
        print(json.dumps(run(args.mode, args.atoms, args.k, args.threads, args.search, args.intervals or (0, 0))))
        return
    results = []
    modes = ["streamed"] + (["dense"] if args.compare_dense else []) + (["intervals"] if args.intervals else [])
    for mode in modes:
        command = [
            sys.executable,
            __file__,
            "--mode",
            "streamed" if mode == "intervals" else mode,
            "--atoms",
            str(args.atoms),
            "--k",
            str(args.k),
            "--threads",
            str(args.threads),
            "--search",
            args.search,
        ]
        if mode == "intervals":
            command += ["--intervals", *map(str, args.intervals)]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{mode:9s} N={result['atoms']:>7d} search={args.search:5s} metrics {result['seconds_metrics']:8.1f} s"
            f"  (data {result['seconds_data']:.1f} s)  peak RSS {result['peak_rss_gib']:.2f} GiB"
        )
    if args.intervals:
        plain, with_intervals = results[0], results[-1]
        print(
            f"with {args.intervals[0]} replicates and {args.intervals[1]} permutations / values only: time "
            f"{with_intervals['seconds_metrics'] / plain['seconds_metrics']:.1f}x, peak memory "
            f"{with_intervals['peak_rss_gib'] / plain['peak_rss_gib']:.1f}x"
        )
    if args.compare_dense:
        fast, slow = results[:2]
        keys = sorted(fast["values"])
        difference = max(abs(fast["values"][key] - slow["values"][key]) for key in keys)
        print(f"max |streamed - dense| over {len(keys)} numbers: {difference:.2e}")
        for metric in ("linear_cka", "mutual_knn"):
            worst = max(abs(fast["values"][key] - slow["values"][key]) for key in keys if key.startswith(metric))
            print(f"  {metric}: {worst:.2e}")
        print(
            f"dense / streamed: time {slow['seconds_metrics'] / fast['seconds_metrics']:.1f}x, "
            f"peak memory {slow['peak_rss_gib'] / fast['peak_rss_gib']:.1f}x"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
