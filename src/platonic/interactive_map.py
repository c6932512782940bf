"""The interactive map: the study's compared environments as a chemiscope dataset (structures, per-environment
properties, map settings) and one self-contained HTML page that shows it with chemiscope's own viewer, offline.

The page inlines the viewer (``chemiscope.min.js``, read from the installed ``chemiscope`` package, never fetched)
and the dataset, so it opens from a file with no network and no server. Arrays in, a dataset dict / a file out.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["CUTOFF", "chemiscope_dataset", "onto_plane", "structure_entries", "viewer_script", "write_page"]

# radius (Å) of the sphere the structure viewer highlights around a selected environment's centre
CUTOFF = 3.5


def structure_entries(
    symbols: list[list[str]], positions: list[np.ndarray], cells: list[np.ndarray | None]
) -> list[dict]:
    """chemiscope's structure records: per structure its element ``symbols`` (n,), Cartesian ``positions`` (n, 3)
    in Å and ``cell`` (3, 3) lattice vectors as rows, or None for a molecule."""
    entries = []
    for names, xyz, cell in zip(symbols, positions, cells, strict=True):
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        entry = {"size": len(names), "names": [str(n) for n in names], "x": xyz[:, 0].tolist(),
                 "y": xyz[:, 1].tolist(), "z": xyz[:, 2].tolist()}  # fmt: skip
        if cell is not None and np.any(cell):
            entry["cell"] = np.asarray(cell, dtype=np.float64).reshape(9).tolist()
        entries.append(entry)
    return entries


def _values(values) -> list:
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64).tolist()
    if array.dtype.kind == "f":
        # rounded to 6 significant digits: the page stays small and the map looks the same; NaN stays NaN
        return [float(f"{v:.6g}") if math.isfinite(v) else math.nan for v in array.astype(np.float64).tolist()]
    return [str(v) for v in array.tolist()]


def chemiscope_dataset(
    structures: list[dict],
    environments: np.ndarray,
    properties: dict[str, tuple[np.ndarray, str]],
    *,
    name: str,
    description: str = "",
    x: str,
    y: str,
    color: str,
    symbol: str | None = None,
    structure_properties: dict[str, tuple[np.ndarray, str]] | None = None,
    cutoff: float = CUTOFF,
) -> dict:
    """The chemiscope input of ``structures`` (``structure_entries``) and their ``environments`` (n_env, 2): per
    environment its structure index and its atom's index in that structure. ``properties``: ``{name: (values
    (n_env,), description)}``; ``structure_properties`` the same per structure; the map shows ``x``, ``y`` and
    ``color`` (names of numeric ``properties``), and marks a string property ``symbol`` by marker shape."""
    environments = np.asarray(environments, dtype=np.int64).reshape(-1, 2)
    sizes = np.array([s["size"] for s in structures])
    if len(environments) and (
        environments[:, 0].max() >= len(structures) or np.any(environments[:, 1] >= sizes[environments[:, 0]])
    ):
        raise ValueError("an environment names a structure or an atom that is not in the structures")
    for key in (x, y, color, *([symbol] if symbol else [])):
        if key not in properties:
            raise ValueError(f"the map's {key!r} is not one of the properties {sorted(properties)}")
    props = {}
    for target, table, count in (("atom", properties, len(environments)),
                                 ("structure", structure_properties or {}, len(structures))):  # fmt: skip
        for key, (values, text) in table.items():
            if len(values) != count:
                raise ValueError(f"property {key!r} has {len(values)} values for {count} {target}s")
            props[key] = {"target": target, "values": _values(values), "description": text}
    return {
        "meta": {"name": name, "description": description},
        "structures": structures,
        "properties": props,
        "environments": [{"structure": int(s), "center": int(a), "cutoff": float(cutoff)} for s, a in environments],
        "settings": {
            "map": {
                "x": {"property": x},
                "y": {"property": y},
                "color": {"property": color},
                **({"symbol": symbol} if symbol else {}),
            },  # fmt: skip
            "structure": [{"environments": {"activated": True, "center": True, "cutoff": float(cutoff)}}],
        },
    }


def onto_plane(reference: np.ndarray, reference_plane: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (q, d) placed on the plane that a linear map (after centring) sent ``reference`` (n, d) to,
    ``reference_plane`` (n, 2) (a principal plane, ``platonic.atom_maps.principal_plane``): (q, 2). The map is
    recovered by least squares, exact where the plane lies in the span of the centred reference rows."""
    reference = np.asarray(reference, dtype=np.float64)
    mean = reference.mean(axis=0)
    axes, *_ = np.linalg.lstsq(reference - mean, np.asarray(reference_plane, dtype=np.float64), rcond=None)
    return (np.asarray(points, dtype=np.float64) - mean) @ axes


def viewer_script() -> str:
    """chemiscope's standalone viewer (JavaScript) as shipped in the installed ``chemiscope`` package."""
    return (resources.files("chemiscope") / "sphinx" / "static" / "chemiscope.min.js").read_text(encoding="utf-8")


# the missing values' stand-in in the page's JSON (which has no NaN); the page reads it back as NaN
NAN = "__NaN__"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ margin: 0; font-family: sans-serif; }}
header {{ padding: 0.4rem 1rem; border-bottom: 1px solid #ccc; }}
header h1 {{ font-size: 1.1rem; margin: 0; }}
header p {{ font-size: 0.85rem; margin: 0.2rem 0 0; color: #444; }}
#platonic-error {{ color: #a94442; white-space: pre-wrap; }}
.platonic-columns {{ display: flex; gap: 0.5rem; padding: 0.5rem; height: calc(100vh - 5rem); }}
.platonic-left, .platonic-right {{ flex: 1; display: flex; flex-direction: column; min-width: 0; }}
#chemiscope-map {{ flex: 1; position: relative; min-height: 0; }}
#chemiscope-structure {{ flex: 1; position: relative; min-height: 0; }}
#chemiscope-info {{ max-height: 40%; overflow: auto; }}
</style>
</head>
<body>
<header><h1>{title}</h1><p>{description}</p><div id="platonic-error"></div></header>
<div class="platonic-columns">
  <div class="platonic-left"><div id="chemiscope-meta"></div><div id="chemiscope-map"></div></div>
  <div class="platonic-right"><div id="chemiscope-structure"></div><div id="chemiscope-info"></div></div>
</div>
<script id="platonic-viewer" type="application/gzip;base64">{viewer}</script>
<script id="platonic-dataset" type="application/gzip;base64">{dataset}</script>
<script>
async function platonicInflate(id) {{
  const text = atob(document.getElementById(id).textContent.trim());
  const bytes = Uint8Array.from(text, function (c) {{ return c.charCodeAt(0); }});
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}}
(async function () {{
  const viewer = document.createElement("script");
  viewer.textContent = await platonicInflate("platonic-viewer");
  document.head.appendChild(viewer);
  window.PLATONIC_DATASET = JSON.parse(await platonicInflate("platonic-dataset"), function (key, value) {{
    return value === "{nan}" ? NaN : value;
  }});
  window.platonicVisualizer = await Chemiscope.DefaultVisualizer.load(
    {{map: "chemiscope-map", info: "chemiscope-info", meta: "chemiscope-meta", structure: "chemiscope-structure"}},
    window.PLATONIC_DATASET
  );
  document.body.dataset.loaded = "yes";
}})().catch(function (error) {{
  document.getElementById("platonic-error").textContent = String(error);
  console.error(error);
}});
</script>
</body>
</html>
"""


def _packed(text: str) -> str:
    """``text`` gzipped (reproducibly: no timestamp) and base64-encoded: what the page inflates."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def write_page(dataset: dict, path: str | Path, title: str, description: str = "") -> Path:
    """One self-contained HTML page at ``path`` showing ``dataset`` (``chemiscope_dataset``) with the inlined viewer;
    the page sets ``window.platonicVisualizer`` and ``body[data-loaded="yes"]`` once the viewer is up.

    Viewer and dataset are stored gzipped (inflated by the browser's ``DecompressionStream``): the page is about
    1.5 MB instead of 3.5, small enough for the Snakemake report to show it inline (Chromium caps an embedded
    page's data URL at 2 MB)."""
    properties = {
        key: {**prop, "values": [NAN if isinstance(v, float) and math.isnan(v) else v for v in prop["values"]]}
        for key, prop in dataset["properties"].items()
    }
    data = json.dumps({**dataset, "properties": properties}, separators=(",", ":"), allow_nan=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        PAGE.format(title=html.escape(title), description=html.escape(description), viewer=_packed(viewer_script()),
                    dataset=_packed(data), nan=NAN),
        encoding="utf-8",
    )  # fmt: skip
    tmp.replace(path)
    return path
