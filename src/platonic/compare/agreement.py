"""Agreement between spaces, pair by pair: every model pair's value of a metric in an earlier and a later space
(``platonic.spaces.SPACES``: what normalising, then the anchors, change), with its interval and chance level where
the similarity store has them, the kind of pair (two MLIPs, an MLIP and a control, two controls) and the mean shift
over the pairs of two MLIPs. Read out of a similarity store; no value is recomputed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from platonic.spaces import SPACES

__all__ = ["PAIR_KINDS", "VARIABLES", "all_space_pairs", "space_pairs", "space_steps"]

# the kind of a pair: how many of its two models are controls (``ds.control``)
PAIR_KINDS = ("MLIP - MLIP", "MLIP - control", "control - control")
VARIABLES = ("similarity", "ci_low", "ci_high", "chance", "chance_sd")


def space_steps(ds: xr.Dataset) -> list[tuple[str, str]]:
    """The (earlier, later) spaces of ``ds`` to set against each other: each space against the one before it in
    ``spaces.SPACES`` (anchor vs unit: what the anchors add; unit vs raw: what normalising does), the last first."""
    present = [s for s in SPACES if s in ds.space.values]
    return list(zip(present, present[1:], strict=False))[::-1]


def space_pairs(ds: xr.Dataset, metric: str, earlier: str, later: str) -> xr.Dataset:
    """Every pair of models of ``ds`` (a directed metric, ``ds.attrs['directed_metrics']``: both directions,
    ``model_a`` -> ``model_b``; otherwise once, a before b in the store's order) in the spaces ``earlier`` and
    ``later``: the store's ``VARIABLES`` present in it as ``(space, pair)``, ``kind (pair)`` an index into
    ``PAIR_KINDS``; ``attrs['shift']``: the mean of ``later - earlier`` over the pairs of two MLIPs with a finite
    value in both spaces (NaN where there is none)."""
    n = ds.sizes["model_a"]
    directed = metric in set(ds.attrs.get("directed_metrics", ()))
    pairs = np.array([(i, j) for i in range(n) for j in range(n) if (i != j if directed else i < j)], dtype=int)
    rows, columns = pairs.reshape(-1, 2).T
    models = np.array([str(m) for m in ds.model_a.values], dtype=object)
    control = ds["control"].sel(model=list(models)).values.astype(bool) if "control" in ds else np.zeros(n, bool)
    kind = control[rows].astype(int) + control[columns]
    spaces = [earlier, later]
    values = {name: [ds[name].sel(metric=metric, space=s).values[rows, columns] for s in spaces]
              for name in VARIABLES if name in ds}  # fmt: skip
    out = xr.Dataset(
        {name: (("space", "pair"), np.stack(v).astype(float)) for name, v in values.items()},
        coords={"space": spaces, "model_a": ("pair", models[rows].tolist()),
                "model_b": ("pair", models[columns].tolist()), "kind": ("pair", kind)},
        attrs={"metric": metric},
    )  # fmt: skip
    x, y = out["similarity"].values
    mlips = np.isfinite(x) & np.isfinite(y) & (kind == 0)
    out.attrs["shift"] = float(np.mean(y[mlips] - x[mlips])) if mlips.any() else float("nan")
    return out


def all_space_pairs(ds: xr.Dataset) -> dict[tuple[str, str, str], xr.Dataset]:
    """``space_pairs`` of every metric of ``ds`` in every step of ``space_steps``: ``{(metric, earlier, later):
    pairs}``, steps in ``space_steps`` order within each metric."""
    return {
        (str(metric), earlier, later): space_pairs(ds, str(metric), earlier, later)
        for metric in ds.metric.values
        for earlier, later in space_steps(ds)
    }
