"""The fan-in as the workflow runs it: one ``summarise`` job per model, one ``compare-pair`` job per pair, one
``gather``, each its own process, reading and writing stores on disk.

A synthetic study is written first: M models (widths 128/256 in turn) that see one clustered 24-dimensional
latent through different nonlinear maps, N atoms in structures of about 10 atoms, and MP-20-like symmetry copies:
about 47 % of the atoms are distinct environments (MP-20: 4,251 of 9,043 on a sample), every other atom is an
exact copy of one of them in its own structure (the same feature row in every model, so the neighbour search has
ties). The anchor store compares one atom per orbit (``compared``), with the orbit's size as ``multiplicity``,
and 100 anchors among the compared atoms; the projections are ``anchor_projection(x, x[anchors])``.

Every job is timed on its own: wall time, CPU time (user + system) and peak RSS, from ``os.wait4`` on the job's
process (so peak RSS is that job's alone, not this script's). Jobs run one after another unless ``--parallel J``;
as Snakemake schedules them, a pair starts once its two summaries are written and the gather once every pair is.

    python benchmarks/fan_in_jobs.py --models 3 --atoms 3000
    python benchmarks/fan_in_jobs.py --models 4 --atoms 5000 --add-one --json /tmp/fan_in_jobs.json
    python benchmarks/fan_in_jobs.py --models 7 --atoms 20000 --add-one --predict 7 282847
    python benchmarks/fan_in_jobs.py --settings-json '{"bootstrap": 0, "permutations": 0}' --parallel 2

Settings: the ``similarity`` section of ``config/config.yaml`` (less the keys that only size a job: threads,
mem_mb, runtime; what it leaves out takes the schema's defaults), with ``--settings-json`` merged over it;
``--threads`` is every job's thread count (the rules' ``--threads``); each job keeps its BLAS and OpenMP to it
(``platonic.process``), as a Snakemake job does.

``--add-one``: after the M-model study, add model M+1 and time only what the workflow then runs (its summary, its
M pairs and the gather of all M+1 models), against the full fan-in of M models and against M mean pair jobs plus
one mean summary job of that study.

The cost model fitted to the study: total CPU = M s + M (M - 1) / 2 p + g, with s, p and g the measured mean CPU of
a summary, a pair and the gather. ``--predict M2 N2`` extrapolates it: every job has a fixed start-up (interpreter
and imports, measured once as the ``startup`` job) and the rest of a summary or a pair scales linearly with N (how
its per-atom parts scale: moments, projections, subsample and queries capped); the gather's rest scales with the
number of stores it reads. Caveats: the neighbour search is exact (N^2 d) up to 50,000 compared atoms and IVF
(about N log N) above, so a run on few atoms extrapolates the exact search, not the IVF one; N scales the compared
atoms only if the fraction of distinct environments stays the same.

Output: a table on stdout and, with ``--json PATH``, every job's numbers, the per-kind summary, the totals, the
added cost and the cost model. Stores and job logs go to ``--workdir`` (default a temporary folder, removed at the
end unless ``--keep``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
CONFIG = ROOT / "config" / "config.yaml"
WIDTHS = (128, 256)
LATENT = 24
CENTRES = 400
STRUCTURE_SIZE = 10
UNIQUE_FRACTION = 0.47
ELEMENTS = (1, 3, 6, 8, 11, 14, 16, 26, 29, 79)
RESOURCE_KEYS = ("threads", "mem_mb", "runtime")  # platonic.settings.RESOURCE_KEYS: what only sizes a job
KINDS = ("summarise", "compare_pair", "gather")
# what every job imports before it reads a store: its fixed start-up cost
STARTUP = (
    "import platonic.cli, platonic.stages.fan_in, platonic.compare.fan_in, platonic.compare.result_store, "
    "platonic.compare.similarity, platonic.store, faiss, xarray, zarr"
)

if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


# ----------------------------------------------------------------------------------------------------------------
# the synthetic study


@dataclass
class Layout:
    """Atoms, structures and symmetry orbits of the synthetic study (model independent)."""

    structure_index: np.ndarray  # (N,) structure of every atom
    site: np.ndarray  # (N,) position in its structure
    representative: np.ndarray  # (N,) the atom whose environment this atom copies (itself for a distinct one)
    multiplicity: np.ndarray  # (N,) size of the atom's orbit
    z: np.ndarray  # (N,) atomic number (copies share their representative's)
    latent: np.ndarray  # (n_distinct, LATENT) latent of every distinct environment
    row: np.ndarray  # (N,) row of ``latent`` of every atom
    anchors: np.ndarray  # (n_anchors,) sorted atom indices, among the distinct atoms

    @property
    def compared(self) -> np.ndarray:
        return self.representative == np.arange(len(self.representative))


def layout(n: int, seed: int, anchors: int, unique_fraction: float = UNIQUE_FRACTION) -> Layout:
    rng = np.random.default_rng([seed, 0])
    sizes = rng.integers(STRUCTURE_SIZE // 2, 3 * STRUCTURE_SIZE // 2 + 1, size=n // (STRUCTURE_SIZE // 2) + 2)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    structure_index = np.repeat(np.arange(len(sizes)), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    site = np.arange(n) - first[structure_index]
    # the first atom of every structure is distinct; the others with the probability that makes the fraction right
    p = np.clip((unique_fraction * sizes.mean() - 1) / (sizes.mean() - 1), 0.0, 1.0)
    distinct = (site == 0) | (rng.random(n) < p)
    distinct_atoms = np.flatnonzero(distinct)
    owner = structure_index[distinct_atoms]
    start = np.searchsorted(owner, np.arange(len(sizes)))
    count = np.bincount(owner, minlength=len(sizes))
    pick = start[structure_index] + (rng.random(n) * count[structure_index]).astype(np.int64)
    representative = np.where(distinct, np.arange(n), distinct_atoms[pick])
    multiplicity = np.bincount(representative, minlength=n)[representative]
    position = np.full(n, -1, dtype=np.int64)
    position[distinct_atoms] = np.arange(len(distinct_atoms))
    row = position[representative]
    z = np.asarray(ELEMENTS)[rng.integers(len(ELEMENTS), size=len(distinct_atoms))][row]
    centres = rng.normal(size=(CENTRES, LATENT))
    latent = centres[rng.integers(CENTRES, size=len(distinct_atoms))] + 0.4 * rng.normal(
        size=(len(distinct_atoms), LATENT)
    )
    if anchors > len(distinct_atoms):
        raise ValueError(f"{anchors} anchors need as many distinct atoms, there are {len(distinct_atoms)}")
    chosen = np.sort(rng.choice(distinct_atoms, size=anchors, replace=False))
    return Layout(structure_index, site, representative, multiplicity, z, latent, row, chosen)


def model_name(m: int) -> str:
    return f"model-{m:02d}"


def model_features(study: Layout, m: int, seed: int) -> np.ndarray:
    """Model ``m``'s ``(N, width)`` float32 features: a nonlinear map of the latent plus noise, computed on the
    distinct environments and copied to their orbits (identical rows)."""
    rng = np.random.default_rng([seed, 1, m])
    width = WIDTHS[m % len(WIDTHS)]
    weights = rng.normal(size=(LATENT, width)) / np.sqrt(LATENT)
    x = np.tanh(study.latent @ weights + 0.3 * rng.normal(size=width))
    x += (0.1 + 0.05 * (m % 7)) * rng.normal(size=x.shape)
    return x.astype(np.float32)[study.row]


def write_anchor_store(study: Layout, root: Path, atoms: str) -> Path:
    import xarray as xr

    from platonic.store import write_store

    n = len(study.structure_index)
    everywhere = np.ones(n, dtype=bool)
    compared = study.compared if atoms == "unique" else everywhere
    ds = xr.Dataset(
        {
            "anchor_atom": ("anchor", study.anchors.astype(np.int64)),
            "compared": ("atom", compared),
            "multiplicity": ("atom", study.multiplicity.astype(np.int64)),
            # both layouts of the valid atoms: common_valid (valid in every model) and reference_valid
            "common_valid": ("atom", everywhere),
            "reference_valid": ("atom", everywhere),
        },
        coords={"anchor": np.arange(len(study.anchors)), "atom": np.arange(n)},
        attrs={
            "kind": "anchors",
            "anchor_set_hash": hashlib.sha256(study.anchors.astype(np.int64).tobytes()).hexdigest(),
            "structure_set_hash": STRUCTURE_SET_HASH,
            "atoms": atoms,
            "n_common_valid": n,
            "n_compared": int(compared.sum()),
        },
    )
    return write_store(ds, root / "anchors.zarr")


STRUCTURE_SET_HASH = "synthetic-fan-in-jobs"


def write_model(study: Layout, m: int, seed: int, root: Path, anchor_set_hash: str) -> tuple[Path, Path]:
    """Model ``m``'s embedding and projection stores."""
    import xarray as xr

    from platonic.projection import anchor_projection
    from platonic.store import write_store

    n = len(study.structure_index)
    x = model_features(study, m, seed)
    ids = np.array([f"syn-{i:07d}" for i in range(int(study.structure_index[-1]) + 1)], dtype=object)
    coords = {
        "atom": np.arange(n),
        "structure_id": ("atom", ids[study.structure_index]),
        "site": ("atom", study.site.astype(np.int64)),
        "Z": ("atom", study.z.astype(np.int64)),
    }
    valid = np.ones(n, dtype=bool)
    attrs = {"model": model_name(m), "model_family": "synthetic", "structure_set_hash": STRUCTURE_SET_HASH}
    embedding = xr.Dataset(
        {"embedding": (("atom", "feature"), x), "valid": ("atom", valid)},
        coords=coords,
        attrs={**attrs, "kind": "embedding"},
    )
    e = write_store(embedding, root / "embeddings" / f"{model_name(m)}.zarr")
    projection = xr.Dataset(
        {"coordinate": (("atom", "anchor"), anchor_projection(x, x[study.anchors])), "valid": ("atom", valid)},
        coords={**coords, "anchor": np.arange(len(study.anchors)), "anchor_atom": ("anchor", study.anchors)},
        attrs={**attrs, "kind": "projection", "anchor_set_hash": anchor_set_hash},
    )
    p = write_store(projection, root / "platonic" / f"{model_name(m)}.zarr")
    return e, p


# ----------------------------------------------------------------------------------------------------------------
# the jobs


@dataclass
class Job:
    kind: str
    name: str
    argv: list[str]
    log: Path
    needs: tuple[str, ...] = ()  # the names of the jobs whose outputs this one reads


@dataclass
class Measured:
    kind: str
    name: str
    phase: str
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    peak_rss_gib: float
    returncode: int
    warnings: list[str] = field(default_factory=list)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_jobs(jobs: list[Job], parallel: int, phase: str) -> list[Measured]:
    """Run ``jobs`` (up to ``parallel`` at once), each once the jobs it ``needs`` have finished, the first ready
    one in list order first (as Snakemake starts a pair job as soon as its two summaries exist, with no barrier
    between the kinds); each timed by ``os.wait4`` on its own process; stops at the first failure, showing the end
    of its log."""
    env, pending, running, done = environment(), list(jobs), {}, []
    finished: set[str] = set()
    while pending or running:
        while len(running) < parallel:
            ready = next((job for job in pending if finished.issuperset(job.needs)), None)
            if ready is None:
                if not running:
                    raise SystemExit(f"jobs waiting on jobs that never run: {[job.name for job in pending]}")
                break
            pending.remove(ready)
            job = ready
            job.log.parent.mkdir(parents=True, exist_ok=True)
            handle = open(job.log, "w")  # noqa: SIM115 (closed when the job ends)
            start = time.perf_counter()
            proc = subprocess.Popen(job.argv, stdout=handle, stderr=subprocess.STDOUT, env=env)
            running[proc.pid] = (job, proc, start, handle)
        pid, status, usage = os.wait4(-1 if parallel > 1 else next(iter(running)), 0)
        end = time.perf_counter()
        if pid not in running:  # not one of ours (there are no others)
            continue
        job, proc, start, handle = running.pop(pid)
        handle.close()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        text = job.log.read_text(errors="replace")
        measured = Measured(
            kind=job.kind,
            name=job.name,
            phase=phase,
            wall_s=end - start,
            cpu_s=usage.ru_utime + usage.ru_stime,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            peak_rss_gib=usage.ru_maxrss / 2**20,  # KiB on Linux
            returncode=proc.returncode,
            warnings=[line for line in text.splitlines() if "WARNING" in line or "Warning" in line],
        )
        done.append(measured)
        finished.add(job.name)
        print(
            f"  {job.kind:12s} {job.name:28s} wall {measured.wall_s:8.2f} s  CPU {measured.cpu_s:8.2f} s  "
            f"peak RSS {measured.peak_rss_gib:6.2f} GiB",
            flush=True,
        )
        if proc.returncode != 0:
            for other in running.values():
                other[1].kill()
            tail = "\n".join(text.splitlines()[-30:])
            raise SystemExit(f"{job.kind} {job.name} failed (exit {proc.returncode}); {job.log}:\n{tail}")
    return done


class Study:
    """Paths and job command lines of one synthetic study in ``root``."""

    def __init__(self, root: Path, settings_json: str, threads: int):
        self.root, self.settings_json, self.threads = root, settings_json, threads
        self.embeddings: dict[str, Path] = {}
        self.projections: dict[str, Path] = {}
        self.summaries: dict[str, Path] = {}
        self.pairs: dict[tuple[str, str], Path] = {}
        self.anchors = root / "anchors.zarr"

    def _common(self) -> list[str]:
        return ["--anchors", str(self.anchors), "--settings", self.settings_json]

    def summarise(self, model: str) -> Job:
        out = self.root / "fan_in" / "models" / f"{model}.zarr"
        self.summaries[model] = out
        argv = [sys.executable, "-m", "platonic", "summarise", str(out),
                "--embedding", str(self.embeddings[model]), "--projection", str(self.projections[model]),
                *self._common(), "--threads", str(self.threads)]  # fmt: skip
        return Job("summarise", model, argv, self.root / "logs" / "summarise" / f"{model}.log")

    def compare_pair(self, a: str, b: str) -> Job:
        a, b = sorted((a, b))
        out = self.root / "fan_in" / "pairs" / f"{a}__{b}.zarr"
        self.pairs[a, b] = out
        argv = [sys.executable, "-m", "platonic", "compare-pair", str(out),
                "--embeddings", str(self.embeddings[a]), str(self.embeddings[b]),
                "--projections", str(self.projections[a]), str(self.projections[b]),
                "--summaries", str(self.summaries[a]), str(self.summaries[b]),
                *self._common(), "--threads", str(self.threads)]  # fmt: skip
        return Job("compare_pair", f"{a}__{b}", argv, self.root / "logs" / "compare_pair" / f"{a}__{b}.log", (a, b))

    def gather(self, models: list[str], tag: str) -> Job:
        pairs = [self.pairs[key] for key in itertools.combinations(sorted(models), 2)]
        out = self.root / "similarity" / f"{tag}.zarr"
        argv = [sys.executable, "-m", "platonic", "gather", str(out), str(out.with_suffix(".csv")),
                "--summaries", *(str(self.summaries[m]) for m in models), "--pairs", *map(str, pairs),
                *self._common()]  # fmt: skip
        pair_jobs = tuple(f"{a}__{b}" for a, b in itertools.combinations(sorted(models), 2))
        return Job("gather", f"{len(models)} models", argv, self.root / "logs" / "gather" / f"{tag}.log", pair_jobs)


# ----------------------------------------------------------------------------------------------------------------
# reporting


def by_kind(measured: list[Measured]) -> dict[str, dict]:
    out = {}
    for kind in dict.fromkeys(m.kind for m in measured):
        jobs = [m for m in measured if m.kind == kind]
        wall, cpu = np.array([m.wall_s for m in jobs]), np.array([m.cpu_s for m in jobs])
        out[kind] = {
            "count": len(jobs),
            "wall_mean_s": float(wall.mean()),
            "wall_max_s": float(wall.max()),
            "cpu_mean_s": float(cpu.mean()),
            "cpu_max_s": float(cpu.max()),
            "peak_rss_max_gib": float(max(m.peak_rss_gib for m in jobs)),
            "wall_total_s": float(wall.sum()),
            "cpu_total_s": float(cpu.sum()),
        }
    return out


def totals(measured: list[Measured], elapsed: float) -> dict:
    return {
        "jobs": len(measured),
        "wall_sum_s": float(sum(m.wall_s for m in measured)),
        "wall_elapsed_s": float(elapsed),
        "cpu_s": float(sum(m.cpu_s for m in measured)),
        "peak_rss_max_gib": float(max(m.peak_rss_gib for m in measured)),
    }


def print_table(title: str, kinds: dict[str, dict], total: dict) -> None:
    print(f"\n{title}")
    header = f"{'job':13s} {'count':>5s} {'wall mean':>10s} {'wall max':>9s} {'CPU mean':>9s} {'CPU max':>9s}"
    print(header + f" {'peak RSS max':>13s}")
    print("-" * (len(header) + 14))
    for kind, row in kinds.items():
        print(
            f"{kind:13s} {row['count']:5d} {row['wall_mean_s']:9.2f}s {row['wall_max_s']:8.2f}s "
            f"{row['cpu_mean_s']:8.2f}s {row['cpu_max_s']:8.2f}s {row['peak_rss_max_gib']:9.2f} GiB"
        )
    print(
        f"total: {total['jobs']} jobs, wall {total['wall_sum_s']:.1f} s summed ({total['wall_elapsed_s']:.1f} s "
        f"elapsed), CPU {total['cpu_s']:.1f} s, largest peak RSS {total['peak_rss_max_gib']:.2f} GiB"
    )


def cost_model(kinds: dict[str, dict], models: int, atoms: int, startup: dict, predict) -> dict:
    """CPU (and the jobs' wall time as run: sequential unless --parallel) = M s + M (M-1)/2 p + g, fitted to this
    study; and its prediction for ``predict = (M2, N2)``."""
    pairs = models * (models - 1) // 2
    out = {"formula": "M*s + M*(M-1)/2*p + g", "models": models, "atoms": atoms}
    for measure in ("cpu", "wall"):
        s = kinds["summarise"][f"{measure}_mean_s"]
        p = kinds["compare_pair"][f"{measure}_mean_s"] if pairs else 0.0
        g = kinds["gather"][f"{measure}_mean_s"]
        fitted = {"s": s, "p": p, "g": g, "total_s": models * s + pairs * p + g}
        if predict:
            m2, n2 = predict
            pairs2 = m2 * (m2 - 1) // 2
            o = startup[f"{measure}_s"]
            scale = n2 / atoms
            s2, p2 = (o + max(c - o, 0.0) * scale for c in (s, p))
            g2 = o + max(g - o, 0.0) * (m2 + pairs2) / (models + pairs)
            fitted["prediction"] = {
                "models": m2,
                "atoms": n2,
                "startup_s": o,
                "s": s2,
                "p": p2,
                "g": g2,
                "total_s": m2 * s2 + pairs2 * p2 + g2,
                "total_pure_linear_s": m2 * s * scale + pairs2 * p * scale + g,
            }
        out[measure] = fitted
    return out


def print_cost_model(model: dict) -> None:
    cpu, wall = model["cpu"], model["wall"]
    print(f"\ncost model, total = {model['formula']} (M = {model['models']}, N = {model['atoms']}):")
    for label, fit in (("CPU", cpu), ("wall (as run)", wall)):
        terms = f"s = {fit['s']:.2f} s, p = {fit['p']:.2f} s, g = {fit['g']:.2f} s"
        print(f"  {label:17s} {terms} -> {fit['total_s']:.1f} s")
    if "prediction" in cpu:
        pc, pw = cpu["prediction"], wall["prediction"]
        pairs2 = pc["models"] * (pc["models"] - 1) // 2
        jobs = f"{pc['models']} summaries, {pairs2} pairs, 1 gather"
        print(f"prediction for M = {pc['models']}, N = {pc['atoms']} ({jobs}):")
        for label, fit in (("CPU", pc), ("wall (as run)", pw)):
            print(
                f"  {label:17s} s = {fit['s']:.1f} s, p = {fit['p']:.1f} s, g = {fit['g']:.1f} s -> "
                f"{fit['total_s']:.0f} s = {fit['total_s'] / 3600:.2f} h "
                f"(everything linear in N, start-up included: {fit['total_pure_linear_s']:.0f} s)"
            )
        print(
            f"  how: a fixed start-up per job (interpreter and imports, {pc['startup_s']:.2f} s CPU) plus the rest of"
            " a summary or a pair linear in N (its per-atom parts); the gather's rest in the number of stores it reads."
        )
        print(
            "  caveats: the neighbour search is exact (N^2 d) up to 50,000 compared atoms and IVF (about N log N)"
            " above it, so extrapolating from a small run extrapolates the exact search; the compared atoms scale"
            " with N only at the same fraction of distinct environments; the subsample and queries are capped."
        )


# ----------------------------------------------------------------------------------------------------------------


def similarity_settings(override: str | None) -> dict:
    """The default config's similarity section, less the keys that only size a job, with ``override`` merged."""
    import yaml

    section = yaml.safe_load(CONFIG.read_text())["similarity"]
    section = {k: v for k, v in section.items() if k not in RESOURCE_KEYS}
    section.update(json.loads(override or "{}"))
    section.pop("threads", None)
    return section


def measure_startup(root: Path, repeats: int = 3) -> dict:
    """The fixed cost of one job: an interpreter importing what the fan-in's jobs import (the fastest of
    ``repeats``)."""
    runs = []
    for i in range(repeats):
        job = Job("startup", "imports", [sys.executable, "-c", STARTUP], root / "logs" / f"startup-{i}.log")
        runs.extend(run_jobs([job], 1, "startup"))
    best = min(runs, key=lambda m: m.cpu_s)
    return {"cpu_s": best.cpu_s, "wall_s": best.wall_s, "peak_rss_gib": best.peak_rss_gib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=7, help="M, the models of the study (default 7)")
    parser.add_argument("--atoms", type=int, default=282_847, help="N, atoms of the study (default: MP-20 train)")
    parser.add_argument("--anchors", type=int, default=100)
    parser.add_argument("--unique-fraction", type=float, default=UNIQUE_FRACTION,
                        help="fraction of the atoms that are distinct environments (default 0.47: MP-20)")  # fmt: skip
    parser.add_argument("--settings-json", default=None, help="similarity settings merged over the default config's")
    parser.add_argument("--threads", type=int, default=2, help="every job's --threads (default 2)")
    parser.add_argument("--parallel", type=int, default=1, metavar="J", help="run up to J jobs at once (default 1)")
    parser.add_argument("--add-one", action="store_true", help="then add model M+1 and time what that runs")
    parser.add_argument("--predict", type=int, nargs=2, metavar=("M2", "N2"), help="extrapolate the cost model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go (default a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    if args.models < 2 or args.parallel < 1:
        parser.error("--models needs at least 2 and --parallel at least 1")

    from platonic.settings import SimilaritySettings

    section = similarity_settings(args.settings_json)
    resolved = SimilaritySettings.from_mapping(section, threads=args.threads)  # validates, and gives atoms
    settings_json = json.dumps(section, sort_keys=True)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="fan_in_jobs-"))
    root.mkdir(parents=True, exist_ok=True)
    keep = args.keep or args.workdir is not None
    try:
        result = benchmark(args, root, settings_json, resolved)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\nstores and logs kept in {root}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"results -> {args.json}")


def write_study(atoms: int, seed: int, n_anchors: int, unique_fraction: float, root: Path, compared_atoms: str,
                n_models: int) -> dict:  # fmt: skip
    """Write the synthetic study's anchor store and every model's stores; their paths and the study's shape."""
    import xarray as xr

    study_layout = layout(atoms, seed, n_anchors, unique_fraction)
    anchors = write_anchor_store(study_layout, root, compared_atoms)
    anchor_set_hash = xr.open_zarr(anchors, consolidated=False).attrs["anchor_set_hash"]
    embeddings, projections = {}, {}
    for m in range(n_models):
        embeddings[model_name(m)], projections[model_name(m)] = write_model(
            study_layout, m, seed, root, anchor_set_hash
        )
    return {
        "embeddings": embeddings,
        "projections": projections,
        "structures": int(study_layout.structure_index[-1]) + 1,
        "compared": int(study_layout.compared.sum()),
        "distinct_fraction": float(study_layout.compared.mean()),
        "largest_orbit": int(study_layout.multiplicity.max()),
    }


def benchmark(args, root: Path, settings_json: str, resolved) -> dict:
    total_models = args.models + (1 if args.add_one else 0)
    print(
        f"fan-in jobs: M = {args.models}{' (+1)' if args.add_one else ''} models, N = {args.atoms} atoms, "
        f"{args.anchors} anchors, threads {args.threads}, parallel {args.parallel}, atoms: {resolved.atoms}"
    )
    print(f"settings: {settings_json}")
    print(f"workdir: {root}")
    start = time.perf_counter()
    # written in a process of its own: a job forked from a parent that held the study would count the parent's
    # pages in its peak RSS (os.wait4's ru_maxrss covers the child before its exec)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        written = pool.submit(write_study, args.atoms, args.seed, args.anchors, args.unique_fraction, root,
                              resolved.atoms, total_models).result()  # fmt: skip
    study = Study(root, settings_json, args.threads)
    study.embeddings, study.projections = written["embeddings"], written["projections"]
    n_compared = written["compared"] if resolved.atoms == "unique" else args.atoms
    print(
        f"study written in {time.perf_counter() - start:.1f} s: {written['structures']} "
        f"structures, {written['compared']} distinct environments of {args.atoms} atoms "
        f"({written['distinct_fraction']:.1%}), largest orbit {written['largest_orbit']}; "
        f"{n_compared} compared atoms"
    )

    print("\nstart-up of one job (imports only):")
    startup = measure_startup(root)

    models = [model_name(m) for m in range(args.models)]
    print(f"\nfan-in of {args.models} models:")
    began = time.perf_counter()
    jobs = [study.summarise(m) for m in models]
    jobs += [study.compare_pair(a, b) for a, b in itertools.combinations(models, 2)]
    measured = run_jobs([*jobs, study.gather(models, f"{args.models}-models")], args.parallel, "study")
    elapsed = time.perf_counter() - began
    kinds, total = by_kind(measured), totals(measured, elapsed)
    print_table(f"fan-in of M = {args.models} models, N = {args.atoms} atoms ({n_compared} compared)", kinds, total)
    result = {
        "models": args.models,
        "atoms": args.atoms,
        "compared_atoms": n_compared,
        "distinct_fraction": written["distinct_fraction"],
        "anchors": args.anchors,
        "threads": args.threads,
        "parallel": args.parallel,
        "settings": json.loads(settings_json),
        "startup": startup,
        "study": {"kinds": kinds, "totals": total},
    }

    if args.add_one:
        new = model_name(args.models)
        print(f"\nadding {new}:")
        began = time.perf_counter()
        jobs = [study.summarise(new), *(study.compare_pair(m, new) for m in models)]
        jobs.append(study.gather([*models, new], f"{args.models + 1}-models"))
        for job in jobs:  # the study's summaries and pairs exist already
            job.needs = tuple(name for name in job.needs if new in name)
        added = run_jobs(jobs, args.parallel, "add-one")
        elapsed = time.perf_counter() - began
        added_kinds, added_total = by_kind(added), totals(added, elapsed)
        print_table(f"adding model {args.models + 1} to the {args.models}-model study", added_kinds, added_total)
        expected = {
            measure: args.models * kinds["compare_pair"][f"{measure}_mean_s"] + kinds["summarise"][f"{measure}_mean_s"]
            for measure in ("cpu", "wall")
        }
        ratios = {
            "cpu_over_full_fan_in": added_total["cpu_s"] / total["cpu_s"],
            "wall_over_full_fan_in": added_total["wall_sum_s"] / total["wall_sum_s"],
            "cpu_over_M_pairs_plus_summary": added_total["cpu_s"] / expected["cpu"],
            "wall_over_M_pairs_plus_summary": added_total["wall_sum_s"] / expected["wall"],
        }
        full_jobs = args.models + args.models * (args.models - 1) // 2 + 1
        print(
            f"added cost: CPU {added_total['cpu_s']:.1f} s, wall {added_total['wall_sum_s']:.1f} s "
            f"({args.models + 2} jobs, against {full_jobs} for the full fan-in)\n"
            f"  / full fan-in of {args.models} models:            CPU {ratios['cpu_over_full_fan_in']:.2f}, "
            f"wall {ratios['wall_over_full_fan_in']:.2f}\n"
            f"  / ({args.models} x mean pair + one mean summary): CPU "
            f"{ratios['cpu_over_M_pairs_plus_summary']:.2f}, wall {ratios['wall_over_M_pairs_plus_summary']:.2f}"
            " (the rest: the gather of every store)"
        )
        result["add_one"] = {"kinds": added_kinds, "totals": added_total, "ratios": ratios,
                             "M_pairs_plus_summary_s": expected}  # fmt: skip
        measured += added

    model = cost_model(kinds, args.models, args.atoms, startup, args.predict)
    print_cost_model(model)
    result["cost_model"] = model
    warned = [m for m in measured if m.warnings]
    if warned:
        print(f"\n{len(warned)} jobs logged warnings, e.g. {warned[0].kind} {warned[0].name}: {warned[0].warnings[0]}")
    result["jobs"] = [asdict(m) for m in measured]
    return result


if __name__ == "__main__":
    main()
