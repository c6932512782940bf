"""How much the anchor space's agreement depends on its anchors: the headline's group means (linear CKA and mutual
k-NN within a family, across families, model vs control) as a function of the number of anchors K and of how they
are chosen, beside the unit space (each model's rows scaled to unit length, no anchors) that the anchor space
starts from.

Every anchor set is a space of its own, compared pair by pair as the fan-in's jobs compare it (``fan_in.summarise``,
``fan_in.compare_pair``, assembled by ``similarity.assemble``: each pair on the atoms both its models embedded, with
the similarity store's row weights, draws, bootstrap replicates and permutations), and its group means are those of
the headline (``headline.pair_groups``, ``pair_means.group_mean``), so the row of the configured anchors is the
headline's anchor-space row. A projection is one matrix product of unit rows computed once per model
(``projection.unit_projection``). Random anchors are drawn several times; their row without a seed is the mean over
the draws, its interval from the mean of their replicates (the same structure draws for every anchor set) and its
``seeds_min``/``seeds_max`` the range of the draws' means.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from platonic.compare.headline import pair_groups
from platonic.compare.neighbours import unit_rows
from platonic.compare.pair_means import group_mean, interval, pair_values
from platonic.compare.registry import label
from platonic.projection import unit_projection
from platonic.settings import SimilaritySettings
from platonic.spaces import unit_space

__all__ = ["COLUMNS", "PairAtoms", "anchor_counts", "anchor_draws", "curve", "reading", "sensitivity_rows", "unit_row"]

COLUMNS = ["metric", "group", "space", "method", "n_anchors", "seed", "n_seeds", "n_pairs", "mean", "ci_low",
           "ci_high", "standard_error", "chance", "seeds_min", "seeds_max", "configured"]  # fmt: skip
UNIT = "unit"
ANCHOR = "anchor"


def anchor_counts(n_anchors, configured: int, n_candidates: int) -> list[int]:
    """The numbers of anchors compared: ``n_anchors`` and the ``configured`` one, each capped at ``n_candidates``
    (the atoms the anchors are chosen among), sorted, without repeats."""
    if n_candidates < 1:
        raise ValueError("there are no candidate atoms to choose anchors among")
    return sorted({min(int(k), n_candidates) for k in (*n_anchors, configured)})


def anchor_draws(methods, counts, seed: int, random_seeds: int) -> list[tuple[str, int, int | None]]:
    """Every anchor set compared, ``(method, K, seed)``: DIRECT once per K (it draws nothing: seed None), random
    ``random_seeds`` times (seeds ``seed``, ``seed + 1``, ...), farthest-point once (from the atom ``seed`` draws)."""
    draws = []
    for k in counts:
        for method in methods:
            if method == "direct":
                draws.append((method, k, None))
            elif method == "random":
                draws.extend((method, k, seed + i) for i in range(random_seeds))
            else:
                draws.append((method, k, seed))
    return draws


def sensitivity_rows(
    raw: dict[str, np.ndarray],
    valid: dict[str, np.ndarray],
    anchor_sets: dict[tuple[str, int, int | None], np.ndarray],
    structure_ids: np.ndarray,
    settings: SimilaritySettings,
    weights: np.ndarray | None = None,
    control: np.ndarray | None = None,
    family: np.ndarray | None = None,
    configured: tuple[str, int, int | None] | None = None,
) -> list[dict]:
    """The table's rows (``COLUMNS``): ``settings.metrics`` over the headline's pair groups in the unit space and
    in the anchor space of every anchor set, each pair compared on the atoms both its models embedded (as the
    fan-in's pair jobs compare it).

    ``raw``: ``{model: features (n, d)}`` on the compared atoms, in the similarity store's model order, and
    ``valid``: ``{model: (n,) bool}`` the atoms each embedded; ``anchor_sets``: ``{(method, K, seed): row indices
    (K,) into the n atoms}``, atoms every model embedded; ``structure_ids (n,)``: each atom's structure;
    ``weights (n,)``: the moment metrics' row weights (None: uniform); ``control``/``family (models,)``: the
    similarity store's ``control`` and ``family`` (default: no controls, each model its own family);
    ``configured``: the anchor set of the anchors stage, ``(method, K, seed)``, marked in the ``configured`` column
    (method ``indices``: the anchors given by anchors.indices, seed None).
    The anchor sets run on ``settings.threads`` threads.
    """
    models = list(raw)
    control = np.zeros(len(models), bool) if control is None else np.asarray(control, bool)
    family = np.array(models) if family is None else np.asarray(family)
    pairs = PairAtoms(models, valid, np.asarray(structure_ids), weights, settings)
    unit_64 = {m: unit_rows(np.asarray(x, dtype=np.float64)) for m, x in raw.items()}

    def one(key):
        if key is None:  # the unit space
            ds = pairs.compare(UNIT, {m: unit_space(x).x for m, x in raw.items()}, control, family)
            return _group_rows(ds, UNIT, settings.metrics)
        space = {m: unit_projection(u, u[anchor_sets[key]]) for m, u in unit_64.items()}
        return _group_rows(pairs.compare(ANCHOR, space, control, family), ANCHOR, settings.metrics)

    keys = sorted(anchor_sets, key=lambda key: (key[1], METHOD_ORDER.get(key[0], 4), key[2] or 0))
    unit, *found_sets = _map(one, [None, *keys], settings.threads)
    rows = [_row(r, UNIT, "", "", "") for r in unit]
    by_seed: dict[tuple, list[dict]] = {}
    for (method, k, seed), found in zip(keys, found_sets, strict=True):
        chosen = configured is not None and (method, k, seed) == tuple(configured)
        for r in found:
            rows.append(_row(r, ANCHOR, method, k, "" if seed is None else seed, configured=chosen))
            if method == "random":
                by_seed.setdefault((k, r["metric"], r["group"]), []).append(r)
    rows += [_seed_mean(draws, key[0]) for key, draws in by_seed.items()]
    return rows


METHOD_ORDER = {"direct": 0, "random": 1, "farthest-point": 2, "indices": 3}  # indices: anchors given, not chosen


def _map(function, items, threads: int) -> list:
    """``function`` over ``items`` on ``threads`` worker threads (one: in this thread), results in order; each
    worker's BLAS and OpenMP get one thread (the anchor sets' small products gain more from running side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    from platonic.process import limit_openmp, limit_threads

    if threads <= 1 or len(items) <= 1:
        return [function(item) for item in items]

    def worker(item):
        with limit_openmp(1):
            return function(item)

    with limit_threads(1), ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(worker, items))


class PairAtoms:
    """The model pairs of a study, each with the atoms both its models embedded and the fan-in's draws on them
    (``fan_in.Comparison``, one per distinct set of atoms): ``compare`` gives one space's similarity-like dataset."""

    def __init__(self, models, valid, structure_ids, weights, settings: SimilaritySettings):
        from platonic.compare import fan_in

        self.models, self.settings = list(models), settings
        self.pairs = [fan_in.pair_key(a, b) for i, a in enumerate(self.models) for b in self.models[i + 1 :]]
        self.atoms, self.comparisons = {}, {}
        for a, b in self.pairs:
            mask = np.asarray(valid[a], bool) & np.asarray(valid[b], bool)
            key = mask.tobytes()
            self.atoms[a, b] = key
            if key not in self.comparisons:
                ids = np.array([str(i) for i in structure_ids[mask]], dtype=object)
                self.comparisons[key] = (mask, fan_in.Comparison.build(
                    int(mask.sum()), np.unique(ids, return_inverse=True)[1],
                    None if weights is None else np.asarray(weights)[mask], settings,
                ))  # fmt: skip

    def compare(self, space: str, features: dict[str, np.ndarray], control, family) -> xr.Dataset:
        """``features`` ``{model: (n, d)}`` of one space compared pair by pair (``fan_in.summarise``,
        ``fan_in.compare_pair``), assembled as the gather assembles the similarity store, ``control``/``family``
        marked; only model pairs, no model with itself."""
        from platonic.compare import fan_in, metrics
        from platonic.compare.similarity import assemble

        summaries: dict[tuple[str, bytes], tuple] = {}

        def summary(model: str, key: bytes):
            if (model, key) not in summaries:
                mask, comparison = self.comparisons[key]
                x = metrics.Features(features[model][mask])
                summaries[model, key] = (x, fan_in.summarise(x, comparison))
            return summaries[model, key]

        results = {}
        for a, b in self.pairs:
            key = self.atoms[a, b]
            (x, sx), (y, sy) = summary(a, key), summary(b, key)
            results[space, a, b] = fan_in.compare_pair(x, y, sx, sy, self.comparisons[key][1])
        ds = assemble(self.models, [space], results, {}, self.settings)
        ds["control"] = ("model", np.asarray(control, bool))
        ds["family"] = ("model", np.asarray(family))
        return ds


def _group_rows(ds: xr.Dataset, space: str, metrics) -> list[dict]:
    """The headline's group means of ``metrics`` in ``space`` of ``ds``, with their replicates (``_replicates``)."""
    rows = []
    for metric in metrics:
        for group, pairs in pair_groups(ds).items():
            if not pairs:
                continue
            mean, replicates, chance = group_mean(pair_values(ds, metric, space, pairs))
            rows.append({"metric": metric, "group": group, "n_pairs": len(pairs), "mean": mean,
                         **interval(replicates, mean), "chance": chance, "_replicates": replicates})  # fmt: skip
    return rows


def _row(group_row: dict, space: str, method: str, k, seed, n_seeds: int = 1, configured: bool = False) -> dict:
    row = {"space": space, "method": method, "n_anchors": k, "seed": seed, "n_seeds": n_seeds,
           "seeds_min": np.nan, "seeds_max": np.nan, "configured": configured}  # fmt: skip
    row.update({key: value for key, value in group_row.items() if not key.startswith("_")})
    return {column: row[column] for column in COLUMNS}


def _seed_mean(draws: list[dict], k: int) -> dict:
    """The mean over the random draws of one metric, group and K, its interval from the mean of their replicates."""
    means = np.array([d["mean"] for d in draws])
    mean = float(means.mean())
    replicates = np.mean([d["_replicates"] for d in draws], axis=0)
    chance = float(np.mean([d["chance"] for d in draws]))
    group_row = {"metric": draws[0]["metric"], "group": draws[0]["group"], "n_pairs": draws[0]["n_pairs"],
                 "mean": mean, **interval(replicates, mean), "chance": chance}  # fmt: skip
    row = _row(group_row, ANCHOR, "random", k, "", n_seeds=len(draws))
    row.update(seeds_min=float(means.min()), seeds_max=float(means.max()))
    return row


def curve(rows: list[dict], metric: str, group: str, method: str) -> list[dict]:
    """The anchor-space rows of one metric, group and method by K (random: the mean over the draws)."""
    found = [
        r for r in rows
        if r["space"] == ANCHOR and (r["metric"], r["group"], r["method"]) == (metric, group, method)
        and (r["seed"] == "" or method == "farthest-point")
    ]  # fmt: skip
    return sorted(found, key=lambda r: r["n_anchors"])


def unit_row(rows: list[dict], metric: str, group: str) -> dict | None:
    """The unit-space row of one metric and group."""
    return next((r for r in rows if r["space"] == UNIT and (r["metric"], r["group"]) == (metric, group)), None)


def reading(rows: list[dict], group: str = "across families") -> str:
    """One line, generated from the rows, on one pair group (else the first with rows): for each metric, how far
    the anchor space is from the unit space at the smallest and the largest K, and at how many K DIRECT is above
    every random draw, inside their range or below all of them."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    if not groups:
        return "No anchor sensitivity: no pair group has pairs."
    group = group if group in groups else groups[0]
    parts = []
    for metric in dict.fromkeys(r["metric"] for r in rows):
        reference = unit_row(rows, metric, group)
        text = f"{label(metric)}"
        direct = curve(rows, metric, group, "direct")
        if direct and reference is not None:
            first, last = direct[0], direct[-1]
            gap_first, gap_last = first["mean"] - reference["mean"], last["mean"] - reference["mean"]
            inside = reference["ci_low"] <= last["mean"] <= reference["ci_high"]
            trend = "approaches" if abs(gap_last) < abs(gap_first) else "does not approach"
            text += (
                f": DIRECT {first['mean']:.2f} at K={first['n_anchors']}, {last['mean']:.2f} at K={last['n_anchors']}"
                f" vs unit {reference['mean']:.2f} ({trend} it; {'inside' if inside else 'outside'} its interval)"
            )
        random = {r["n_anchors"]: r for r in curve(rows, metric, group, "random")}
        if direct and random:
            above = sum(d["mean"] > random[d["n_anchors"]]["seeds_max"] for d in direct if d["n_anchors"] in random)
            below = sum(d["mean"] < random[d["n_anchors"]]["seeds_min"] for d in direct if d["n_anchors"] in random)
            shared = sum(d["n_anchors"] in random for d in direct)
            n_seeds = next(iter(random.values()))["n_seeds"]
            text += (
                f"; DIRECT above all {n_seeds} random draws at {above} of {shared} K, below all at {below},"
                f" within their range at {shared - above - below}"
            )
        parts.append(text)
    return f"{group}: " + "; ".join(parts) + "."
